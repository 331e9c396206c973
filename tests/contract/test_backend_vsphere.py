"""VsphereBackend keeps the backend contract: real pyVmomi against the vCenter simulator."""

from __future__ import annotations

import pytest

from tests.contract.backend import BackendContract
from tests.testbed.fixtures import VsphereBed
from vmshare.backends.vsphere.backend import VsphereBackend

pytestmark = pytest.mark.integration


class TestVsphereBackend(BackendContract):
    @pytest.fixture
    def backend(self, vsphere: VsphereBed, monkeypatch):
        for name, value in vsphere.env.items():
            monkeypatch.setenv(name, value)
        backend = VsphereBackend(vsphere.settings())
        yield backend
        backend.close()

    @pytest.fixture
    def vm(self, vsphere: VsphereBed):
        return vsphere.vm
