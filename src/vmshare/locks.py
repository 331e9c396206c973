"""The locks of a changing command: one per VM it works on, and one around host-wide edits.

A run holds the lock of every VM it changes for the whole run, so a second vmshare on the same
VM waits (then is refused with ``LockTimeout``) while one on another VM proceeds. The state file
has its own lock (``StateStore.locked``), taken only for each journal write. The host lock keeps
a run of one VM's host steps (an SMB account and the share that uses it, say) from interleaving
with another VM's, in this process (threads) and across processes.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from vmshare.errors import LockTimeout

_POLL = 0.05


def _lock_file(directory: Path, name: str) -> Path:
    # a VM name may hold any character: the file is named by its hash, the name kept inside
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    folder = directory / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"vm-{digest}.lock"


@contextmanager
def _flocked(path: Path, timeout: float, what: str) -> Iterator[None]:
    """An exclusive flock on ``path``, waited for up to ``timeout`` seconds."""
    import fcntl  # POSIX only: imported here so that Windows can load this module

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another vmshare run is still changing {what} after {timeout:g} s "
                        f"(lock {path})",
                        hint="wait for it to finish, or work on other VMs meanwhile; "
                        "the lock frees itself when that run ends",
                    ) from None
                time.sleep(_POLL)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def vms_locked(directory: Path, vms: Iterable[str], timeout: float) -> Iterator[None]:
    """Hold the lock of each VM in ``vms`` (taken in sorted order: two runs never deadlock)."""
    with ExitStack() as stack:
        for vm in sorted(set(vms)):
            stack.enter_context(_flocked(_lock_file(directory, vm), timeout, f"VM {vm!r}"))
        yield


class HostLock:
    """Serialises runs of host steps across the threads of this process and other processes."""

    def __init__(self, directory: Path, timeout: float) -> None:
        self.path = directory / "locks" / "host.lock"
        self.timeout = timeout
        self._thread_lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise LockTimeout(
                f"the host's file-server settings stayed locked for {self.timeout:g} s",
                hint="another VM's host steps take long; run the command again",
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with _flocked(self.path, self.timeout, "the host's file-server settings"):
                yield
        finally:
            self._thread_lock.release()
