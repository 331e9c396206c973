"""The vCenter simulator's guest-operation stand-in (tests/testbed/vcsim/main.go) checked against
pyvmomi's own type tables: every method it answers exists in the vSphere API under that name,
every fault it raises is one the method declares (or a runtime fault, which any method may
raise), and the data objects it encodes by hand carry exactly the API's fields."""

from __future__ import annotations

import re

import pytest
from pyVmomi import vim, vmodl
from tests.testbed.vcsim import SOURCE

GO = SOURCE.read_text()
MANAGERS = {"processManager": vim.vm.guest.ProcessManager, "fileManager": vim.vm.guest.FileManager}


def functions() -> dict[tuple[str, str], str]:
    """(receiver type, name) -> body of each method in main.go ('' receiver: plain function)."""
    found = {}
    pattern = re.compile(r"^func (?:\(\w+ \*?(\w+)\) )?(\w+)\(", re.M)
    starts = list(pattern.finditer(GO))
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        end = following.start() if following else len(GO)
        found[(match.group(1) or "", match.group(2))] = GO[match.start() : end]
    return found


FUNCTIONS = functions()
API_METHODS = [
    (receiver, name) for (receiver, name) in FUNCTIONS if receiver in MANAGERS and name[0].isupper()
]


def wsdl_method(receiver: str, name: str):
    methods = {m.wsdlName: m for m in MANAGERS[receiver]._methodInfo.values()}
    assert name in methods, f"{name} is no method of {MANAGERS[receiver].__name__}"
    return methods[name]


def raised_faults(body: str) -> set[str]:
    faults = set(re.findall(r"&types\.(\w+)\{", body))
    if "g.check(" in body:
        faults |= raised_faults(FUNCTIONS[("guestOps", "check")])
    if "g.script(" in body:
        faults |= raised_faults(FUNCTIONS[("guestOps", "script")])
    return {f for f in faults if f.endswith(("Fault", "Login")) or _fault_class(f) is not None}


def _fault_class(name: str):
    for namespace in (vim.fault, vmodl.fault):
        cls = getattr(namespace, name, None)
        if isinstance(cls, type) and issubclass(cls, vmodl.MethodFault):
            return cls
    return None


def test_the_stand_in_answers_the_guest_operations_a_backend_needs() -> None:
    assert {name for _, name in API_METHODS} >= {
        "StartProgramInGuest",
        "ListProcessesInGuest",
        "InitiateFileTransferToGuest",
        "InitiateFileTransferFromGuest",
    }


@pytest.mark.parametrize(("receiver", "name"), API_METHODS)
def test_methods_and_faults_are_the_apis(receiver: str, name: str) -> None:
    method = wsdl_method(receiver, name)
    declared = tuple(_fault_class(f.rsplit(".", 1)[1]) for f in method.faults)
    faults = raised_faults(FUNCTIONS[(receiver, name)])
    assert faults, f"{name} raises no fault"
    for fault in sorted(faults):
        cls = _fault_class(fault)
        assert cls is not None, f"{name} raises {fault}, no vSphere fault type"
        assert issubclass(cls, vmodl.RuntimeFault) or issubclass(cls, declared), (
            f"{name} raises {fault}, which {method.wsdlName} does not declare ({method.faults})"
        )


def test_login_faults_are_the_guest_operations_ones() -> None:
    check = raised_faults(FUNCTIONS[("guestOps", "check")])
    assert {"InvalidGuestLogin", "GuestOperationsUnavailable", "InvalidPowerState"} <= check
    assert issubclass(vim.fault.InvalidGuestLogin, vim.fault.GuestOperationsFault)


def test_process_info_has_the_apis_fields() -> None:
    struct = re.search(r"type processInfo struct \{(.*?)\n\}", GO, re.S)
    assert struct is not None
    fields = set(re.findall(r'xml:"(\w+)', struct.group(1)))
    api = {p.name for p in vim.vm.guest.ProcessManager.ProcessInfo._propList}
    assert fields == api
    # exitCode and endTime are optional in the API: sent only once the process ended
    optional = {p.name for p in vim.vm.guest.ProcessManager.ProcessInfo._propList if p.flags & 4}
    assert optional == {"endTime", "exitCode"}
    assert re.search(r'ExitCode +\*int32 +`xml:"exitCode,omitempty"`', struct.group(1))
