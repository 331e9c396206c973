"""The qemu-guest-agent channel (libvirt) keeps the guest channel contract, on the test guest."""

from __future__ import annotations

import pytest

from tests.contract.channel import GuestChannelContract
from vmshare.backends.libvirt.agent import AgentChannel

pytestmark = pytest.mark.integration


class TestAgentChannel(GuestChannelContract):
    @pytest.fixture
    def channel(self, guest):
        return AgentChannel(lambda: guest.dom, guest.name)

    @pytest.fixture
    def side_effects(self, guest):
        return lambda path: guest.run("test", "-e", path)[0] == 0
