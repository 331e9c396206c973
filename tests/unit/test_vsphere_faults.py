"""vSphere faults become vmshare errors by type (the nearest in the fault hierarchy)."""

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
        raise ConnectionRefusedError(111, "refused")
