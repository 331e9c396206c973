"""VirtualBox result codes as vmshare errors with hints, for both adapters: pyvbox raises
``VBoxError`` subclasses carrying the code, VBoxManage prints ``Details: code NAME (0x...)``."""

from __future__ import annotations

import re

from vmshare.errors import HypervisorError, NotFoundError, VmshareError

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


def vbox_error(code: int, message: str, what: str) -> VmshareError:
    """The vmshare error for VirtualBox result ``code`` while doing ``what``."""
    code &= 0xFFFFFFFF
    text = f"VirtualBox could not {what}: {message.strip() or f'result 0x{code:08x}'}"
    hint = HINTS.get(code, "see VirtualBox's VBoxSVC.log for the details")
    if code == OBJECT_NOT_FOUND:
        return NotFoundError(text, hint=hint)
    return HypervisorError(text, hint=hint)


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
