"""Which object carries out each layer's actions: the host layer comes from the VM's backend."""

from __future__ import annotations

import inspect

import pytest

from vmshare import core
from vmshare.backends.base import Backend
from vmshare.backends.fake import FakeBackend, FakeHost
from vmshare.host import Host, HostActions
from vmshare.host.local import LocalHost
from vmshare.plan.step import ACTIONS
from vmshare.secrets import SecretStore
from vmshare.spec import vm_settings
from vmshare.state import StateStore


def _public(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction) if name[0] != "_"}


def test_the_host_interface_is_exactly_the_host_actions():
    assert _public(HostActions) == ACTIONS["host"]
    assert _public(Host) == ACTIONS["host"] | {"export_entries"}


def test_local_host_offers_every_host_action_with_the_interface_signature():
    for name in _public(Host):
        ours = inspect.signature(getattr(LocalHost, name))
        declared = inspect.signature(getattr(Host, name))
        assert list(ours.parameters) == list(declared.parameters), name


class _Base(FakeBackend):
    def __init__(self, connection: str = "fake://") -> None:
        super().__init__()
        self.uri = connection


class _RemoteHost(LocalHost):
    pass


class _RemoteBackend(_Base):
    def host(self, secrets: SecretStore | None = None) -> Host:
        return _RemoteHost(secrets)


@pytest.fixture
def session(tmp_path, monkeypatch):
    backends = {"a": _Base("a"), "b": _Base("b"), "r": _RemoteBackend("r")}
    monkeypatch.setattr(core, "load_backend", lambda settings: backends[settings.connection])
    vms = {
        name: vm_settings(name, connection=connection)
        for name, connection in (("vm1", "a"), ("vm2", "a"), ("vm3", "b"), ("vm4", "r"))
    }
    return core.Session(vms, StateStore(tmp_path))


def test_the_default_backend_host_is_the_local_host(session):
    assert isinstance(Backend.host(_Base(), None), LocalHost)


def test_backends_that_keep_the_default_share_the_sessions_local_host(session):
    host = session.layer("host", "vm1")
    assert host is session.local_host
    assert session.layer("host", "vm2") is host
    assert session.layer("host", "vm3") is host
    assert host.secrets is session.secrets


def test_a_backend_with_its_own_host_gets_it_once_for_all_its_vms(session):
    host = session.layer("host", "vm4")
    assert isinstance(host, _RemoteHost)
    assert host is not session.local_host
    assert session.host("vm4") is host
    assert host.secrets is session.secrets


def test_the_guest_interface_is_exactly_the_guest_actions():
    from vmshare.guest import Guest, GuestActions

    assert _public(GuestActions) == ACTIONS["guest"]
    assert _public(Guest) == ACTIONS["guest"] | {"inspect"}


# Shared code takes backend knowledge (commands, agents, networking modes) from the backend.
SHARED = [
    "core.py",
    "status.py",
    "render.py",
    "doctor.py",
    "errors.py",
    "guest/__init__.py",
    "guest/linux.py",
    "guest/windows.py",
    "host/__init__.py",
    "host/local.py",
]


@pytest.mark.parametrize("module", SHARED)
def test_shared_modules_do_not_speak_libvirt(module):
    from pathlib import Path

    import vmshare

    text = (Path(vmshare.__file__).parent / module).read_text()
    for word in ("virsh", "qemu-guest-agent", "slirp", "Driver"):
        assert word not in text, f"{module} names {word}"


def test_both_guests_take_the_guest_actions_keyword_arguments():
    from vmshare.guest import Guest
    from vmshare.guest.linux import LinuxGuest
    from vmshare.guest.windows import WindowsGuest

    for name in _public(Guest):
        declared = list(inspect.signature(getattr(Guest, name)).parameters)
        for cls in (LinuxGuest, WindowsGuest):
            assert list(inspect.signature(getattr(cls, name)).parameters) == declared, (cls, name)


def test_the_fake_host_offers_the_host_actions():
    for name in ACTIONS["host"]:
        ours = list(inspect.signature(getattr(FakeHost, name)).parameters)
        assert ours == list(inspect.signature(getattr(HostActions, name)).parameters), name
