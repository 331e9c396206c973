"""The vmrun guest channel (runProgramInGuest, copyFile...) keeps the guest channel contract: the
vmrun stand-in runs each program in the session's real test guest through its agent."""

from __future__ import annotations

import pytest

from tests.contract.channel import GuestChannelContract
from tests.testbed.fixtures import VmwareBed
from vmshare.backends.vmware_desktop.backend import VmwareDesktopBackend

pytestmark = pytest.mark.integration


class TestVmrunChannel(GuestChannelContract):
    # vmrun cannot stop a guest program it gave up waiting for
    timeout_may_still_run = True

    @pytest.fixture
    def channel(self, vmware: VmwareBed):
        settings = vmware.settings()
        backend = VmwareDesktopBackend(settings)
        yield backend.guest_channel(settings)
        backend.close()

    @pytest.fixture
    def side_effects(self, guest):
        return lambda path: guest.run("test", "-e", path)[0] == 0
