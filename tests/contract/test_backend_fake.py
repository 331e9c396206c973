"""The public FakeBackend keeps the backend contract, so tests built on it mean something."""

import pytest
from tests.contract.backend import DeviceBackendContract

from vmshare.backends.fake import FakeBackend, FakeVm
from vmshare.backends.libvirt import capabilities as libvirt


class TestFakeBackend(DeviceBackendContract):
    @pytest.fixture
    def backend(self):
        caps = libvirt.capabilities(
            running=False,
            acpi=True,
            shared_memory_config=False,
            shared_memory_live=False,
            user_networking=False,
        )
        return FakeBackend(FakeVm("contract", caps, running=False))

    @pytest.fixture
    def vm(self):
        return "contract"

    @pytest.fixture
    def device(self):
        return "virtiofs"
