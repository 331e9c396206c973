"""Atomic file replacement: temp file in the same folder, fsync, rename, fsync the folder.

Files are edited through symlinks: a path that is a symlink (or a chain of them, relative or
absolute) is resolved to its final target, which is replaced in its own folder; the link stays a
link. A dangling link gets its target created (as a shell's ``>`` through it would); a link loop
is an error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

BACKUP_SUFFIX = ".vmshare-bak"
# Windows has no fchown/fchmod (before 3.13) and cannot open a folder to fsync it
_WINDOWS = os.name == "nt"


def real_file(path: Path) -> Path:
    """The file that ``path`` names once every symlink (in it and in its folders) is followed.

    Raises OSError(ELOOP) for a symlink loop.
    """
    resolved = Path(os.path.realpath(path))
    if resolved.is_symlink():  # realpath stops, without an error, at a loop
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
    return resolved


def backup_path(path: Path) -> Path:
    """Where the previous version of ``path`` is kept: next to the real file, not the link."""
    real = real_file(path)
    return real.with_name(real.name + BACKUP_SUFFIX)


def atomic_write(
    path: Path, data: bytes, *, mode: int | None = None, keep_backup: bool = False
) -> None:
    """Replace the file ``path`` names with ``data`` so readers see the old or the new file, never
    half. A symlink is followed and stays a symlink.

    ``mode``: the new file's mode; by default an existing file keeps its mode and owner, and a new
    one gets 0644. With ``keep_backup`` the previous version is kept as ``<name>.vmshare-bak``
    next to the real file.
    """
    target = real_file(Path(path))
    folder = target.parent
    try:
        previous: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        previous = None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            if mode is None and previous is not None and hasattr(os, "fchown"):
                with contextlib.suppress(PermissionError):  # not ours to give away: keep ours
                    os.fchown(tmp.fileno(), previous.st_uid, previous.st_gid)
            if hasattr(os, "fchmod"):  # Windows: the new file's ACL comes from its folder
                os.fchmod(
                    tmp.fileno(),
                    mode if mode is not None else previous.st_mode & 0o7777 if previous else 0o644,
                )
            os.fsync(tmp.fileno())
        if keep_backup and previous is not None:
            shutil.copy2(target, target.with_name(target.name + BACKUP_SUFFIX))
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if _WINDOWS:
        return  # NTFS journals the rename itself; a folder cannot be opened to fsync it
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def locked_folder(path: Path) -> Iterator[None]:
    """An exclusive lock on the folder holding the file ``path`` names (a symlink followed), for
    read-modify-write of a shared file.

    Locking the folder (not the file) survives the file being replaced by rename, and leaves no
    lock file behind in places like /etc.
    """
    import fcntl  # POSIX only: imported here so that Windows can load this module

    fd = os.open(real_file(Path(path)).parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_text(path: Path) -> str:
    """The file's text, or "" when it does not exist yet (or is a dangling symlink)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (0700): created so, tightened when it is
    looser. A folder that belongs to another user, or is a symlink, is refused: vmshare's state
    and secrets must not live where someone else decides who reads them."""
    from vmshare.errors import StateError  # fsutil stays free of vmshare imports at load

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path)
    if _WINDOWS:
        return path  # the folder's ACL comes from the user's profile
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StateError(
            f"{path} is not a folder of its own (a symlink or a file)",
            hint="remove it, or set VMSHARE_STATE_DIR to a folder only you can enter",
        )
    if info.st_uid != os.geteuid():
        raise StateError(
            f"{path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})",
            hint="set VMSHARE_STATE_DIR to a folder of your own, or fix the folder's owner",
        )
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)  # a looser folder (an older vmshare, a umask) is tightened
    return path


def private_file(path: Path) -> None:
    """Tighten an existing secret file to 0600 (one written by hand, say)."""
    if not _WINDOWS and os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)
