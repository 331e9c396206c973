"""VirtualBox result codes as vmshare errors with hints, for both adapters: pyvbox raises
``VBoxError`` subclasses carrying the code, VBoxManage prints ``Details: code NAME (0x...)``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

from vmshare.errors import HypervisorError, NotFoundError, VmshareError

T = TypeVar("T")

OBJECT_NOT_FOUND = 0x80BB0001
INVALID_VM_STATE = 0x80BB0002
FILE_ERROR = 0x80BB0004
INVALID_OBJECT_STATE = 0x80BB0007
OBJECT_IN_USE = 0x80BB000C
INVALID_ARG = 0x80070057

HINTS: dict[int, str] = {
    OBJECT_NOT_FOUND: "check the name with `VBoxManage list vms` (a name or UUID works)",
    INVALID_VM_STATE: "the VM is in the wrong state for this change: check it with "
    "`VBoxManage showvminfo VM`, stop or start it, and try again",
    INVALID_OBJECT_STATE: "another program holds the VM's lock (the VirtualBox GUI's settings "
    "dialog, another VBoxManage): close it and try again",
    OBJECT_IN_USE: "a shared folder of this name exists already: `vmshare status` shows "
    "whose it is",
    FILE_ERROR: "VirtualBox cannot reach the host folder: check that it exists and that the "
    "user running VirtualBox may read it",
    INVALID_ARG: "VirtualBox refused an argument: report this to vmshare",
}
# VBoxManage asked for the write lock (a permanent folder, ...) while something holds the machine
WRITE_LOCK_HINT = (
    "the VM runs, or another program holds the VM's lock (the VirtualBox GUI's settings dialog, "
    "another VBoxManage): VBoxManage changes a permanent folder only while the VM is off and "
    "unlocked; pass --restart (vmshare stops the VM for it), close that program, or set "
    'adapter = "sdk" (its API changes the folder while the VM runs)'
)
_CODE = re.compile(r"code (\w+) \((0x[0-9a-fA-F]+)\)")
# Another client holds the VM's session lock (the GUI's settings dialog of a stopped VM, a second
# VBoxManage): VirtualBox refuses a write lock or a VM start at once ("The machine 'X' is already
# locked for a session (or being unlocked)", "... already locked by a session (or being locked or
# unlocked)"). Such a lock is often let go within moments, so vmshare asks again for a while.
LOCK_WAIT = 5.0  # s
LOCK_RETRY = 0.25  # s between two asks
LOCK_HELD = (
    "another program held the VM's session lock for {wait:g} s (close the VirtualBox GUI's "
    "settings dialog, or end the other VBoxManage or API session using the VM)"
)
LOCK_HINT = (
    "close what holds the VM's lock (the VirtualBox GUI, another VBoxManage), then run the "
    "command again"
)


def vbox_error(code: int, message: str, what: str) -> VmshareError:
    """The vmshare error for VirtualBox result ``code`` while doing ``what``."""
    code &= 0xFFFFFFFF
    text = f"VirtualBox could not {what}: {message.strip() or f'result 0x{code:08x}'}"
    hint = HINTS.get(code, "see VirtualBox's VBoxSVC.log for the details")
    if code == OBJECT_NOT_FOUND:
        return NotFoundError(text, hint=hint)
    error = HypervisorError(text, hint=hint)
    error.lock_held = code == INVALID_OBJECT_STATE and "already locked" in message  # type: ignore[attr-defined]
    return error


def lock_held(error: VmshareError) -> bool:
    """Whether VirtualBox refused ``error``'s call because a session holds the VM's lock."""
    return bool(getattr(error, "lock_held", False))


def waiting_for_lock(
    attempt: Callable[[], T], wait: float | None = None, futile: Callable[[], bool] | None = None
) -> T:
    """``attempt()``, asked again while another session holds the VM's lock, for at most
    ``wait`` s; then its refusal, which says what holds the lock and how long vmshare waited.
    ``futile()`` (asked at the first refusal): True when waiting cannot help (the VM's own
    process holds the lock), and the refusal is raised as it is."""
    wait = LOCK_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    asked = False
    while True:
        try:
            return attempt()
        except VmshareError as exc:
            if not lock_held(exc):
                raise
            if not asked:
                asked = True
                if futile is not None and futile():
                    raise
            if time.monotonic() >= deadline:
                exc.message += "; " + LOCK_HELD.format(wait=wait)
                exc.args = (exc.message,)
                exc.hint = LOCK_HINT
                raise
        time.sleep(LOCK_RETRY)


def from_vboxmanage(stderr: str, what: str) -> VmshareError:
    """The error of a failed VBoxManage run, from its ``error:`` lines and result code."""
    lines = [ln.partition("error: ")[2] for ln in stderr.splitlines() if "error: " in ln]
    found = _CODE.search(stderr)
    message = next((ln for ln in lines if not ln.startswith("Details:")), "")
    if not message:
        message = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    code = int(found.group(2), 16) if found else 0x80004005  # E_FAIL
    error = vbox_error(code, message, what)
    if code == INVALID_OBJECT_STATE and "LockType_Write" in stderr:
        error.hint = WRITE_LOCK_HINT
    return error
