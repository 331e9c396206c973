"""vSphere faults become vmshare errors by type (the nearest in the fault hierarchy)."""

import http.client
import ssl

import pytest
from pyVmomi import vim, vmodl

from vmshare.backends.vsphere.faults import FAULTS, map_fault, vim_errors
from vmshare.errors import BackendUnavailable, GuestError, HypervisorError, NotFoundError

ISSUE_FAULTS = {
    vim.fault.GuestOperationsUnavailable: GuestError,
    vim.fault.InvalidGuestLogin: GuestError,
    vim.fault.GuestPermissionDenied: GuestError,
    vim.fault.GuestComponentsOutOfDate: GuestError,
    vim.fault.OperationDisabledByGuest: GuestError,
    vim.fault.TooManyGuestLogons: GuestError,
    vim.fault.InvalidLogin: BackendUnavailable,
    vim.fault.NotAuthenticated: BackendUnavailable,
    vim.fault.InvalidPowerState: HypervisorError,
    vmodl.fault.ManagedObjectNotFound: NotFoundError,
    vim.fault.FileNotFound: HypervisorError,
    vmodl.fault.MethodNotFound: HypervisorError,
}


@pytest.mark.parametrize("fault, error", ISSUE_FAULTS.items(), ids=lambda x: x.__name__)
def test_each_fault_the_issue_names_has_its_own_entry_and_error(fault, error):
    assert fault in FAULTS  # its own words, not a parent's
    mapped = map_fault(fault(msg="detail"), "vc.example")
    assert type(mapped) is error
    assert mapped.hint and "vc.example" in mapped.message


def test_the_message_text_does_not_decide_the_mapping():
    """A login fault whose text talks about files is still a login fault."""
    mapped = map_fault(vim.fault.InvalidLogin(msg="FileNotFound: no such guest"), "vc")
    assert isinstance(mapped, BackendUnavailable) and "login" in mapped.message


def test_an_unlisted_fault_takes_its_nearest_listed_parent():
    mapped = map_fault(vim.fault.GuestProcessNotFound(), "vc")
    assert isinstance(mapped, GuestError) and "guest operation" in mapped.message


def test_tls_and_network_failures_are_backend_unavailable_with_hints():
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    with pytest.raises(BackendUnavailable, match="not trusted") as info, vim_errors("vc"):
        raise error
    assert "ca_file" in info.value.hint
    with pytest.raises(BackendUnavailable, match="did not answer"), vim_errors("vc"):
        raise TimeoutError()
    with pytest.raises(BackendUnavailable, match="cannot be reached"), vim_errors("vc"):
        raise OSError(113, "No route to host")


def test_a_server_that_stops_answering_is_named_with_the_deadline_it_missed():
    with pytest.raises(BackendUnavailable) as info, vim_errors("https://vc:443", 30):
        raise TimeoutError("The read operation timed out")
    assert info.value.message == "vSphere at https://vc:443 did not answer within 30 s"
    assert "overloaded" in (info.value.hint or "")


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"),
        http.client.RemoteDisconnected("Remote end closed connection without response"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_server_that_stopped_mid_request_is_said_so_in_plain_words(exc):
    with pytest.raises(BackendUnavailable) as info, vim_errors("https://vc:443", 30):
        raise exc
    assert info.value.message == "vSphere at https://vc:443 dropped the connection mid-request"
    assert "_ssl.c" not in info.value.message


def test_a_server_that_is_not_running_refuses_the_connection():
    with pytest.raises(BackendUnavailable) as info, vim_errors("https://vc:443", 30):
        raise ConnectionRefusedError(111, "Connection refused")
    assert info.value.message == (
        "vSphere at https://vc:443 refused the connection (nothing listens on its port)"
    )


def test_a_failed_reconfigure_task_says_the_configuration_could_not_change():
    fault = vim.fault.GenericVmConfigFault(msg="Unable to write VMX file: No space left on device")
    mapped = map_fault(fault, "https://vc:443")
    assert type(mapped) is HypervisorError
    assert mapped.message == (
        "vSphere could not change the VM's configuration (https://vc:443: Unable to write VMX "
        "file: No space left on device)"
    )
    assert "datastore" in (mapped.hint or "")


def test_a_power_state_fault_names_the_state_the_vm_is_in():
    fault = vim.fault.InvalidPowerState(requestedState="poweredOn", existingState="poweredOff")
    mapped = map_fault(fault, "vc")
    assert "(vc: the VM is powered off, this needs it powered on)" in mapped.message
    assert "start the VM" in (mapped.hint or "")


def test_faults_raised_before_the_operation_started_mark_it_never_ran():
    """The executor skips the undo of a step vCenter refused before starting it."""
    off = map_fault(vim.fault.InvalidPowerState(existingState="poweredOff"), "vc")
    tools = map_fault(vim.fault.GuestOperationsUnavailable(), "vc")
    other = map_fault(vim.fault.GuestProcessNotFound(), "vc")
    assert off.never_ran and tools.never_ran and not other.never_ran
