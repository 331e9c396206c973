"""The VMware Tools guest channel's own failures: guest login, TLS and vSphere login (what every
channel does is in tests/contract/test_channel_vsphere.py)."""

from __future__ import annotations

import pytest
from pyVmomi import vim
from tests.testbed.vcsim import Vcsim

from vmshare.backends.vsphere.guestops import ToolsChannel
from vmshare.backends.vsphere.lookup import find_vm
from vmshare.backends.vsphere.session import Endpoint, close_session, open_session
from vmshare.backends.vsphere.transfer import Transfer
from vmshare.errors import BackendUnavailable, GuestError

pytestmark = pytest.mark.integration


@pytest.fixture
def endpoint(vcsim: Vcsim) -> Endpoint:
    return Endpoint(vcsim.host, vcsim.port, vcsim.username, ca_file=str(vcsim.ca_file))


@pytest.fixture
def channel(vcsim: Vcsim, endpoint: Endpoint):
    instance = open_session(endpoint, vcsim.password)
    content = instance.RetrieveContent()
    vm, _ = find_vm(content, content.rootFolder, vcsim.vm)
    assert vm is not None

    def auth(password: str = vcsim.guest_password) -> vim.vm.guest.NamePasswordAuthentication:
        return vim.vm.guest.NamePasswordAuthentication(username=vcsim.guest_user, password=password)

    transfer = Transfer(endpoint.host, endpoint.port, endpoint.tls())
    yield ToolsChannel(content, vm.obj, auth, transfer, endpoint.label)
    close_session(instance)


def test_a_wrong_guest_password_is_a_guest_error_with_a_hint(channel):
    channel.auth = lambda: vim.vm.guest.NamePasswordAuthentication(
        username="root", password="wrong-password"
    )
    with pytest.raises(GuestError, match="refused the guest-operations login") as info:
        channel.run(["true"])
    assert "password" in info.value.hint


def test_the_simulators_certificate_is_refused_without_its_ca(vcsim: Vcsim):
    with pytest.raises(BackendUnavailable, match="not trusted") as info:
        open_session(Endpoint(vcsim.host, vcsim.port, vcsim.username), vcsim.password)
    assert "ca_file" in info.value.hint


def test_a_wrong_password_is_a_clear_login_error(vcsim: Vcsim, endpoint: Endpoint):
    with pytest.raises(BackendUnavailable, match="refused the login"):
        open_session(endpoint, "not-the-password")
