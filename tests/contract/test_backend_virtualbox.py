"""VirtualboxBackend keeps the device backend contract with both adapters: real pyvbox over
the COM-level fake, and the VBoxManage stand-in, over the test bed's machine model."""

from __future__ import annotations

import pytest

from tests.contract.backend import DeviceBackendContract
from tests.testbed.fixtures import VboxBed
from vmshare.backends.virtualbox.backend import VirtualboxBackend
from vmshare.backends.virtualbox.settings import VirtualboxVm


class TestVirtualboxBackend(DeviceBackendContract):
    @pytest.fixture(params=["sdk", "vboxmanage"])
    def backend(self, request, vbox_bed: VboxBed):
        backend = VirtualboxBackend(VirtualboxVm(name="devvm", adapter=request.param))
        backend._adapter, backend.why = vbox_bed.adapter(request.param), "the test bed's"
        yield backend
        backend.close()

    @pytest.fixture
    def vm(self, vbox_bed: VboxBed):
        vbox_bed.model.create("devvm")
        return "devvm"

    @pytest.fixture
    def device(self):
        return "vboxsf"
