"""HypervBackend keeps the backend contract: its real scripts answered by the Hyper-V host
stand-in (parsed with tree-sitter-powershell, allow-listed cmdlets only), handed over in
process and, as a real host gets them, by real pywinrm over the loopback WS-Man endpoint."""

from __future__ import annotations

import pytest

from tests.contract.backend import BackendContract
from tests.testbed.hyperv import HyperVHost, Vm
from tests.testbed.hyperv.runner import StandInPowerShell
from tests.testbed.wsman.fixture import WsmanBed
from vmshare.backends.hyperv.backend import HypervBackend
from vmshare.backends.hyperv.settings import HypervVm
from vmshare.backends.hyperv.winrm import WinRMPowerShell


class TestHypervBackend(BackendContract):
    @pytest.fixture(params=["in-process", "winrm"])
    def backend(self, request: pytest.FixtureRequest, tmp_path, wsman: WsmanBed):
        host = HyperVHost(tmp_path / "windows")
        host.vms["contract-vm"] = Vm("contract-vm")
        if request.param == "winrm":
            wsman.handler = host.handle
            settings = wsman.settings(name="contract-vm")
            backend = HypervBackend(settings, WinRMPowerShell(settings))
        else:
            backend = HypervBackend(HypervVm(name="contract-vm"), StandInPowerShell(host))
        yield backend
        backend.close()

    @pytest.fixture
    def vm(self):
        return "contract-vm"
