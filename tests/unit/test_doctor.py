"""doctor lists every backend of the registry honestly: built or not, its SDK and tool found or
missing, judged by the import system's finders and PATH without importing anything."""

import importlib.machinery
import shutil
import sys

import pytest

from vmshare import doctor
from vmshare.backends import REGISTRY, BackendEntry

SDKS = {entry.sdk for entry in REGISTRY.values() if entry.sdk} | {"virtualbox"}
# a planned backend that needs a Python package and a program (the shape VirtualBox had)
PLANNED = BackendEntry("planned", None, "virtualbox", "x", "hint", tool="VBoxManage")


class Finder:
    """A meta path finder that finds exactly ``present`` among the SDKs."""

    def __init__(self, present):
        self.present = set(present)

    def find_spec(self, name, path=None, target=None):
        if name in self.present:
            return importlib.machinery.ModuleSpec(name, loader=None)
        return None


@pytest.fixture
def world(monkeypatch):
    """Choose which SDKs import and which programs are on PATH."""

    def set_world(sdks, tools):
        for sdk in SDKS:
            monkeypatch.delitem(sys.modules, sdk, raising=False)
        monkeypatch.setattr(sys, "meta_path", [Finder(sdks)])
        monkeypatch.setattr(
            shutil, "which", lambda name: f"/usr/bin/{name}" if name in tools else None
        )

    return set_world


def test_nothing_installed_is_never_shown_as_installed(world):
    world(sdks=(), tools=())
    checks = {c.name: c for c in doctor._backends(None)}
    assert [name.removeprefix("backend ") for name in checks] == list(REGISTRY)
    for name, sdk, extra in (("libvirt", "libvirt", "libvirt"), ("vsphere", "pyVmomi", "vmware")):
        assert checks[f"backend {name}"].status == "fail"
        assert checks[f"backend {name}"].detail == f"Python package '{sdk}' missing"
        assert f"pip install 'vmshare[{extra}]'" in (checks[f"backend {name}"].hint or "")
    assert checks["backend hyperv"].status == "fail"
    assert checks["backend hyperv"].detail == "Python package 'winrm' missing"
    vmware = checks["backend vmware-desktop"]  # built: no vmrun is a failure, said missing
    assert (vmware.status, vmware.detail) == ("fail", "vmrun missing"), vmware
    assert "Workstation or Fusion" in (vmware.hint or "")
    assert checks["backend virtualbox"].status == "fail"  # built; needs VBoxManage
    assert checks["backend virtualbox"].detail == "VBoxManage missing"


def test_found_sdks_and_tools_are_said_installed_and_still_not_built(world):
    world(sdks=SDKS, tools=("vmrun", "VBoxManage"))
    for entry in REGISTRY.values():
        if entry.module is not None:
            continue
        check = doctor._not_built(entry)
        assert check.status == "info" and "missing" not in check.detail
        assert check.detail.startswith("not built in this version")
    vbox = doctor._not_built(PLANNED).detail
    assert "Python package 'virtualbox' installed" in vbox and "VBoxManage installed" in vbox


def test_a_tool_missing_beside_an_installed_sdk_is_said_missing(world):
    world(sdks=SDKS, tools=())
    vbox = doctor._not_built(PLANNED).detail
    assert "Python package 'virtualbox' installed" in vbox and "VBoxManage missing" in vbox


class _Rows:
    """A backend stand-in for diagnose_vm: its own rows, then the facts of a VM that is off."""

    def __init__(self, rows):
        self.rows = rows
        self.inspected = False

    def diagnose(self, vm):
        return self.rows

    def sdk_errors(self):
        import contextlib

        return contextlib.nullcontext()

    def inspect(self, vm):
        from vmshare.facts import VmFacts

        self.inspected = True
        return VmFacts(name=vm, backend="x", connection="c", exists=True, running=False)

    def close(self):
        pass


def test_backend_rows_come_first_and_a_failure_stops_the_doctor(tmp_path, monkeypatch):
    from vmshare.backends.base import Backend, Diagnosis
    from vmshare.core import Session
    from vmshare.spec import Spec, vm_settings
    from vmshare.state import StateStore

    assert Backend.diagnose(None, "vm") == []  # type: ignore[arg-type] - the default: no rows
    store = StateStore(tmp_path / "state")
    spec = Spec(vm={"vm1": vm_settings("vm1")})
    ok = _Rows([Diagnosis("server", "ok", "fine")])
    monkeypatch.setattr(Session, "backend", lambda self, vm: ok)
    checks = doctor.diagnose_vm(store, "vm1", spec_file=spec)
    assert [(c.name, c.status) for c in checks] == [("server", "ok"), ("vm vm1", "warn")]
    assert ok.inspected
    failing = _Rows([Diagnosis("tls", "fail", "untrusted", "give ca_file")])
    monkeypatch.setattr(Session, "backend", lambda self, vm: failing)
    checks = doctor.diagnose_vm(store, "vm1", spec_file=spec)
    assert [(c.name, c.status, c.hint) for c in checks] == [("tls", "fail", "give ca_file")]
    assert not failing.inspected
