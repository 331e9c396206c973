"""Writing a file server's config file: directly when vmshare may (root, or a folder it can
write), else through ``sudo -n`` with the exact commands of ``privileged.file_commands``.

Either way the change is atomic (a whole new file, fsynced, renamed over the old one, and the
folder fsynced) and the previous version is kept as ``.vmshare-bak`` when asked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vmshare import hostexec
from vmshare.errors import HostCommandError
from vmshare.fsutil import atomic_write, real_file
from vmshare.host import privileged
from vmshare.host.privileged import backup_of, staged_path


def direct(path: Path) -> bool:
    """Whether this process may change the file itself (no sudo needed)."""
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        return True
    real = real_file(path)
    writable = not real.exists() or os.access(real, os.W_OK)
    return writable and os.access(real.parent, os.W_OK)


def write(path: Path, data: bytes, *, keep_backup: bool = False) -> None:
    """Replace the file ``path`` names (a symlink followed) with ``data``."""
    if direct(path):
        atomic_write(path, data, keep_backup=keep_backup)
        return
    real = real_file(path)
    staged = staged_path(real)
    try:
        if real.exists():  # the staged copy takes the file's mode and owner; tee keeps them
            hostexec.run(
                ["cp", "-p", "--", str(real), str(staged)], privileged=True, timeout=hostexec.QUICK
            )
        hostexec.run(["tee", str(staged)], input=data, privileged=True, timeout=hostexec.QUICK)
        _flush(staged)  # on disk before the rename, as atomic_write does: never an empty file
        if keep_backup and real.exists():
            backup = str(backup_of(real))
            hostexec.run(
                ["cp", "-p", "--", str(real), backup], privileged=True, timeout=hostexec.QUICK
            )
        hostexec.run(
            ["mv", "-f", "--", str(staged), str(real)], privileged=True, timeout=hostexec.QUICK
        )
        _flush(real.parent)  # the rename itself on disk
    except HostCommandError:
        with contextlib.suppress(HostCommandError):  # the error above is the one to report
            hostexec.run(["rm", "-f", "--", str(staged)], privileged=True, timeout=hostexec.QUICK)
        raise


def _flush(path: Path) -> None:
    """fsync ``path`` (a file or folder) as root (privileged.BSD_SYNC: how)."""
    if privileged.BSD_SYNC:
        hostexec.run(["sync"], privileged=True, timeout=hostexec.QUICK)
    else:
        hostexec.run(["sync", "--", str(path)], privileged=True, timeout=hostexec.QUICK)


def remove(path: Path) -> None:
    """Delete the file ``path`` (a symlink itself, not its target); gone already is fine."""
    path = Path(path)
    if direct(path):
        path.unlink(missing_ok=True)
    elif path.exists() or path.is_symlink():
        hostexec.run(["rm", "-f", "--", str(path)], privileged=True, timeout=hostexec.QUICK)
