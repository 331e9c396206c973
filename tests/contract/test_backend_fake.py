"""The public FakeBackend keeps the backend contract, so tests built on it mean something."""

import pytest
from tests.contract.backend import BackendContract, DeviceBackendContract

from vmshare.backends.fake import FakeBackend, FakeVm
from vmshare.backends.libvirt import capabilities as libvirt
from vmshare.facts import Capabilities


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


class TestFakeBackendWithRecords(BackendContract):
    """A network-only VM that keeps vmshare's records (like vSphere's extraConfig)."""

    @pytest.fixture
    def backend(self):
        return FakeBackend(FakeVm("contract", Capabilities(records=True)))

    @pytest.fixture
    def vm(self):
        return "contract"
