"""The ssh channel keeps the guest channel contract: host OpenSSH to dropbear in a guest."""

from __future__ import annotations

import pytest

from tests.contract.channel import GuestChannelContract
from tests.testbed.domain import agent_exec
from vmshare.guest.ssh import SshChannel

pytestmark = pytest.mark.integration


class TestSshChannel(GuestChannelContract):
    passes_exit_255 = False  # ssh's own failures are exit code 255
    timeout_may_still_run = True  # ssh stops its client; the remote command may go on

    @pytest.fixture
    def channel(self, ssh_guest):
        return SshChannel(ssh_guest.access)

    @pytest.fixture
    def side_effects(self, ssh_guest):
        return lambda path: agent_exec(ssh_guest.dom, ["test", "-e", path])[0] == 0
