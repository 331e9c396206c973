"""VmwareDesktopBackend keeps the device backend contract through the vmrun stand-in: on the
running VM (the session's test guest; folders go through vmrun and become virtiofs devices in the
domain) and on a VM that is off (folders go into its .vmx)."""

from __future__ import annotations

import pytest

from tests.contract.backend import DeviceBackendContract
from tests.testbed.fixtures import VMWARE_OFF, VmwareBed
from vmshare.backends.vmware_desktop.backend import VmwareDesktopBackend

pytestmark = pytest.mark.integration


class TestVmwareDesktopRunning(DeviceBackendContract):
    @pytest.fixture
    def backend(self, vmware: VmwareBed):
        backend = VmwareDesktopBackend(vmware.settings())
        yield backend
        backend.close()

    @pytest.fixture
    def vm(self, vmware: VmwareBed):
        return vmware.vm

    @pytest.fixture
    def device(self):
        return "hgfs"


class TestVmwareDesktopStopped(TestVmwareDesktopRunning):
    @pytest.fixture
    def backend(self, vmware: VmwareBed):
        backend = VmwareDesktopBackend(vmware.settings(VMWARE_OFF))
        assert not backend.running()
        yield backend
        backend.close()

    @pytest.fixture
    def vm(self):
        return VMWARE_OFF
