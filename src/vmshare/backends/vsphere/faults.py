"""vSphere faults mapped to vmshare errors by fault type, never by message text.

``vim_errors(server)`` is the one place a pyVmomi fault, a TLS failure or a lost connection turns
into a vmshare error with a hint; the backend's ``sdk_errors()`` and the guest-operations channel
both go through it. The most specific fault type wins (the table is searched along the fault's
class hierarchy).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from pyVmomi import vim, vmodl

from vmshare.errors import (
    BackendUnavailable,
    GuestError,
    HypervisorError,
    NotFoundError,
    VmshareError,
    never_ran,
)

ErrorType = type[VmshareError]

# fault type -> (vmshare error, what happened, what to do)
FAULTS: dict[type[Exception], tuple[ErrorType, str, str]] = {
    vim.fault.InvalidLogin: (
        BackendUnavailable,
        "vSphere refused the login",
        "check the user and the password reference ([vm.NAME] user, password_env or keyring)",
    ),
    vim.fault.NotAuthenticated: (
        BackendUnavailable,
        "the vSphere session is not (or no longer) authenticated",
        "run the command again; if it persists, check the session timeout on the server",
    ),
    vim.fault.NoPermission: (
        HypervisorError,
        "the vSphere user lacks a privilege for this operation",
        "give the user the VirtualMachine.Config and VirtualMachine.GuestOperations privileges",
    ),
    vim.fault.InvalidPowerState: (
        HypervisorError,
        "the VM is not in the power state this operation needs",
        "start the VM (or pass --restart to let vmshare start it)",
    ),
    vim.fault.TaskInProgress: (
        HypervisorError,
        "another task is busy with the VM",
        "wait for it to finish in the vSphere client, then run the command again",
    ),
    vmodl.fault.ManagedObjectNotFound: (
        NotFoundError,
        "the VM (or an object it refers to) no longer exists on the server",
        "check the VM's name with `vmshare list`; it may have been deleted or moved",
    ),
    vmodl.fault.MethodNotFound: (
        HypervisorError,
        "the server does not offer this API method",
        "vmshare needs vSphere 6.5 or newer (guest operations need ESXi 5.0 or newer)",
    ),
    vim.fault.FileNotFound: (
        HypervisorError,
        "a file vmshare needs is not there",
        "check the path in the message; for a guest file, check the guest's filesystem",
    ),
    vim.fault.GuestOperationsUnavailable: (
        GuestError,
        "VMware Tools in the guest does not answer guest operations",
        "check that the guest runs (not frozen or overloaded) and that VMware Tools "
        '(open-vm-tools) runs in it, or set [vm.NAME.guest] channel = "ssh"',
    ),
    vim.fault.InvalidGuestLogin: (
        GuestError,
        "the guest refused the guest-operations login",
        "check [vm.NAME.guest] user and its password reference",
    ),
    vim.fault.GuestPermissionDenied: (
        GuestError,
        "the guest user may not do this inside the guest",
        "use a guest user that may mount filesystems (root), or the ssh channel",
    ),
    vim.fault.GuestComponentsOutOfDate: (
        GuestError,
        "VMware Tools in the guest is too old for guest operations",
        "upgrade VMware Tools (open-vm-tools) in the guest",
    ),
    vim.fault.OperationDisabledByGuest: (
        GuestError,
        "the guest has disabled guest operations",
        "enable them in the guest's VMware Tools configuration, or use the ssh channel",
    ),
    vim.fault.TooManyGuestLogons: (
        GuestError,
        "the guest has too many guest-operations sessions open",
        "wait a minute for idle sessions to expire, then run the command again",
    ),
    vim.fault.GuestOperationsFault: (
        GuestError,
        "a guest operation failed",
        "check VMware Tools in the guest, or use the ssh channel",
    ),
    vim.fault.VmConfigFault: (
        HypervisorError,
        "vSphere could not change the VM's configuration",
        "check the VM's datastore (free space, access) and its tasks and events in the "
        "vSphere client, then run the command again",
    ),
    vim.fault.InvalidState: (
        HypervisorError,
        "the VM is in a state that does not allow this operation",
        "check the VM in the vSphere client",
    ),
    vim.fault.FileFault: (
        HypervisorError,
        "a file operation failed",
        "check the path in the message",
    ),
    vmodl.fault.NotSupported: (
        HypervisorError,
        "the server does not support this operation",
        "check the server's version and licence",
    ),
    vmodl.fault.HostCommunication: (
        BackendUnavailable,
        "vCenter cannot reach the VM's ESXi host",
        "check the host's connection state in the vSphere client",
    ),
    vmodl.MethodFault: (
        HypervisorError,
        "vSphere reported a fault",
        "check the VM's tasks and events in the vSphere client",
    ),
}


# a connection the server (or something between) dropped: reset, closed, or TLS cut short
_DROPPED = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
)

_POWER = {"poweredOn": "powered on", "poweredOff": "powered off", "suspended": "suspended"}


def _detail(fault: Exception) -> str:
    """What the fault itself says: its states where it has them, else its message or type."""
    if isinstance(fault, vim.fault.InvalidPowerState) and fault.existingState:
        now = _POWER.get(fault.existingState, fault.existingState)
        wanted = _POWER.get(fault.requestedState or "", fault.requestedState)
        return f"the VM is {now}" + (f", this needs it {wanted}" if wanted else "")
    return getattr(fault, "msg", None) or type(fault).__name__


# faults vCenter raises before it starts the operation: the step that met one never ran
_REFUSED_BEFORE = (vim.fault.InvalidPowerState, vim.fault.GuestOperationsUnavailable)


def map_fault(fault: Exception, server: str) -> VmshareError:
    """The vmshare error for a pyVmomi fault (the nearest type in FAULTS)."""
    for kind in type(fault).__mro__:
        if kind in FAULTS:
            error, what, hint = FAULTS[kind]
            mapped = error(f"{what} ({server}: {_detail(fault)})", hint=hint)
            return never_ran(mapped) if isinstance(fault, _REFUSED_BEFORE) else mapped
    return HypervisorError(f"vSphere at {server} failed: {fault}", hint="see the message")


@contextmanager
def vim_errors(server: str, timeout: float | None = None) -> Iterator[None]:
    """Faults, TLS failures and lost connections as vmshare errors (see FAULTS); ``timeout``:
    the deadline of each request (s), which a server that stops answering is said to miss."""
    try:
        yield
    except vmodl.MethodFault as fault:
        raise map_fault(fault, server) from None
    except ssl.SSLCertVerificationError as exc:
        raise BackendUnavailable(
            f"the TLS certificate of {server} is not trusted: {exc.verify_message}",
            hint="give the server's CA with [vm.NAME] ca_file (or, for a lab only, "
            "insecure = true, which the plan then states)",
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, socket.timeout | TimeoutError):
            what = "did not answer " + (f"within {timeout:g} s" if timeout else "in time")
            hint = "check that the server runs and is not overloaded, then run the command again"
        elif isinstance(exc, ConnectionRefusedError):
            what = "refused the connection (nothing listens on its port)"
            hint = "check the server address and port, and that it runs"
            raise never_ran(BackendUnavailable(f"vSphere at {server} {what}", hint=hint)) from None
        elif isinstance(exc, _DROPPED):  # mid-request: the server stopped or restarted
            what = "dropped the connection mid-request"
            hint = "check that the server runs (it may have stopped or restarted), then run the "
            "command again"
        else:
            what = f"cannot be reached: {exc}"
            hint = "check the server address and port, and that it runs"
        raise BackendUnavailable(f"vSphere at {server} {what}", hint=hint) from None
