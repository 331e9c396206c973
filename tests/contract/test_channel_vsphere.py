"""The VMware Tools guest-operations channel keeps the guest channel contract: real pyVmomi
against the vCenter simulator, whose stand-in forwards each program run and file transfer to
the session's real test guest."""

from __future__ import annotations

import pytest

from tests.contract.channel import GuestChannelContract
from tests.testbed.fixtures import VsphereBed
from vmshare.backends.vsphere.backend import VsphereBackend

pytestmark = pytest.mark.integration


class TestVsphereToolsChannel(GuestChannelContract):
    @pytest.fixture
    def channel(self, vsphere: VsphereBed, monkeypatch):
        for name, value in vsphere.env.items():
            monkeypatch.setenv(name, value)
        settings = vsphere.settings()
        backend = VsphereBackend(settings)
        yield backend.guest_channel(settings)
        backend.close()

    @pytest.fixture
    def side_effects(self, guest):
        return lambda path: guest.run("test", "-e", path)[0] == 0
