"""HypervBackend keeps the backend contract: its real scripts answered by the Hyper-V host
stand-in (parsed with tree-sitter-powershell, allow-listed cmdlets only)."""

from __future__ import annotations

import pytest

from tests.contract.backend import BackendContract
from tests.testbed.hyperv import HyperVHost, Vm
from tests.testbed.hyperv.runner import StandInPowerShell
from vmshare.backends.hyperv.backend import HypervBackend
from vmshare.backends.hyperv.settings import HypervVm


class TestHypervBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path):
        host = HyperVHost(tmp_path / "windows")
        host.vms["contract-vm"] = Vm("contract-vm")
        backend = HypervBackend(HypervVm(name="contract-vm"), StandInPowerShell(host))
        yield backend
        backend.close()

    @pytest.fixture
    def vm(self):
        return "contract-vm"
