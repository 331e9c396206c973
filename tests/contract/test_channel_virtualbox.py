"""VirtualBox guest control keeps the guest channel contract with both adapters: VBoxManage
guestcontrol run (the stand-in) and pyvbox's guest session (the COM-level fake), each running
the program in the session's real test guest."""

from __future__ import annotations

import pytest

from tests.contract.channel import GuestChannelContract
from tests.testbed.fixtures import VBOX_GUEST_PASSWORD, Guest, VboxBed
from vmshare.backends.virtualbox.channel import GuestControlChannel
from vmshare.secret_value import Secret

pytestmark = pytest.mark.integration


def channel_over(adapter: str, guest: Guest, bed: VboxBed) -> GuestControlChannel:
    bed.model.create("devvm", running=True, domain=guest.name, logins={"root": VBOX_GUEST_PASSWORD})
    return GuestControlChannel(
        bed.adapter(adapter), "devvm", "root", lambda: Secret(VBOX_GUEST_PASSWORD)
    )


class TestVBoxManageGuestControl(GuestChannelContract):
    # VBoxManage returns a guest's exit code 94 and above as one code (126): not a result
    passes_exit_255 = False

    @pytest.fixture
    def channel(self, guest: Guest, vbox_bed: VboxBed):
        return channel_over("vboxmanage", guest, vbox_bed)

    @pytest.fixture
    def side_effects(self, guest: Guest):
        return lambda path: guest.run("test", "-e", path)[0] == 0


class TestSdkGuestSession(GuestChannelContract):
    @pytest.fixture
    def channel(self, guest: Guest, vbox_bed: VboxBed):
        return channel_over("sdk", guest, vbox_bed)

    @pytest.fixture
    def side_effects(self, guest: Guest):
        return lambda path: guest.run("test", "-e", path)[0] == 0
