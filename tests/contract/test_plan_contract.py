"""The plan contract: for every kind of VM a backend can report (its capability set), vmshare
chooses a protocol it offers and says why, applies it, finds nothing left to do on a second run,
and removes everything it made. Run through the public FakeBackend/FakeWorld: no SDK, no VM.

A new capability set (a new backend's typical VM) opts in with one entry in CAPABILITY_SETS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from vmshare import core
from vmshare.apply import Journal, execute
from vmshare.backends.fake import FakeBackend, FakeVm, FakeWorld
from vmshare.backends.libvirt import capabilities as libvirt
from vmshare.facts import Capabilities, DeviceCapability, Prerequisite
from vmshare.plan.choice import network_protocols
from vmshare.plan.network import HostServers
from vmshare.plan.removal import removal_plan
from vmshare.plan.resolve import resolve
from vmshare.spec import HostSettings, NfsHost, SmbHost, parse_spec
from vmshare.state import State, StateStore

WWW_DATA = "33:33"  # a named, non-root owner: Samba's force user needs a name


@dataclass(frozen=True)
class CapabilitySet:
    name: str
    capabilities: Capabilities
    auto: str  # the protocol `auto` must choose
    because: str  # a fragment of the reason it must give


CAPABILITY_SETS = [
    CapabilitySet(
        "device+network (libvirt)",
        libvirt.capabilities(
            running=True,
            acpi=True,
            shared_memory_config=True,
            shared_memory_live=True,
            user_networking=False,
        ),
        "virtiofs",
        "best device share",
    ),
    CapabilitySet(
        "device needing a prerequisite (vboxsf-like)",
        Capabilities(
            devices=[
                DeviceCapability(
                    protocol="virtiofs",
                    semantics="test",
                    missing=[Prerequisite(name="folders-on", summary="enable", reason="needed")],
                    readonly_enforced=True,
                )
            ]
        ),
        "virtiofs",
        "best device share",
    ),
    CapabilitySet(
        "network-only, records on the VM (vSphere)",
        Capabilities(records=True, record_where="extraConfig guestinfo.vmshare.{tag}"),
        "nfs",
        "no device share",
    ),
    CapabilitySet("SMB-only (Hyper-V)", Capabilities(network=["smb"]), "smb", "no device share"),
    CapabilitySet(
        "Windows guest", Capabilities(network=["smb"], guest_os="windows"), "smb", "Windows guest"
    ),
]


@pytest.fixture(params=CAPABILITY_SETS, ids=lambda c: c.name)
def capability_set(request):
    return request.param


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    os.chown(folder, 33, 33)
    return folder


@pytest.fixture
def servers(tmp_path):
    settings = HostSettings(
        nfs=NfsHost(exporter="ganesha", exports_file=str(tmp_path / "exports.conf")),
        smb=SmbHost(exporter="samba", include_file=str(tmp_path / "smb.conf")),
    )
    return HostServers.from_settings(settings)


def spec_for(source, protocol="auto", **extra):
    owner = f'owner = "{WWW_DATA}"\n' if protocol in ("nfs", "smb", "auto") else ""
    lines = "".join(f"{k} = {v}\n" for k, v in extra.items())
    text = (
        f'[[share]]\nsource = "{source}"\nvm = "vm1"\ntarget = "/mnt/src"\n'
        f'protocol = "{protocol}"\n{owner}{lines}'
    )
    return parse_spec(text)


def world_for(capability_set):
    return FakeWorld(FakeBackend(FakeVm("vm1", capability_set.capabilities.model_copy(deep=True))))


def plan_now(spec, world, state, servers, **kw):
    facts = world.facts(spec)
    return resolve(spec, facts, state, origin="cli", servers=servers, **kw)


class TestPlanContract:
    def test_auto_picks_what_the_capabilities_offer_and_says_why(
        self, capability_set, source, servers
    ):
        spec = self._spec(capability_set, source)
        world = world_for(capability_set)
        plan = plan_now(spec, world, State(), servers)
        choice = plan.choices[0]
        assert choice.protocol == capability_set.auto
        assert capability_set.because in choice.reason
        assert choice.semantics

    def test_only_the_chosen_network_protocols_are_probed(self, capability_set, source):
        spec = self._spec(capability_set, source)
        facts = world_for(capability_set).facts(spec, protocols=())
        chosen = network_protocols(spec, facts)
        expected = {capability_set.auto} & {"nfs", "smb"}
        assert chosen == expected

    def test_apply_then_nothing_to_do_then_remove_leaves_nothing(
        self, capability_set, source, servers, tmp_path
    ):
        spec = self._spec(capability_set, source)
        world = world_for(capability_set)
        store = StateStore(tmp_path / "state")
        state = store.load()
        plan = plan_now(spec, world, state, servers, allow_restart=True)
        assert plan.steps and not plan.blockers
        execute(plan, world, Journal(store, state, plan))
        assert not world.empty()
        records = world.backend.vms["vm1"].records
        if capability_set.capabilities.records:
            (record,) = records.values()
            assert record["key"] == "vm1:/mnt/src" and record["source"] == str(source)
            assert record["protocol"] == capability_set.auto
        else:
            assert records == {}
            assert not any(s.action == "record_share" for s in plan.steps)

        again = plan_now(spec, world, store.load(), servers)
        assert again.steps == [], [s.summary for s in again.steps]

        state = store.load()
        removal = removal_plan(list(state.shares.values()), allow_restart=True)
        execute(removal, world, Journal(store, state, removal))
        assert world.empty()
        assert store.load().shares == {}

    def test_a_protocol_the_vm_does_not_offer_is_refused_with_the_choices(
        self, capability_set, source, servers
    ):
        offered = [d.protocol for d in capability_set.capabilities.devices]
        offered += capability_set.capabilities.network
        missing = next(p for p in ("hgfs", "9p", "virtiofs", "nfs") if p not in offered)
        spec = spec_for(source, protocol=missing)
        with pytest.raises(Exception, match="cannot share with") as info:
            plan_now(spec, world_for(capability_set), State(), servers)
        assert all(p in info.value.hint for p in offered)

    @staticmethod
    def _spec(capability_set, source):
        if capability_set.auto in ("nfs", "smb"):
            return spec_for(source)
        return parse_spec(f'[[share]]\nsource = "{source}"\nvm = "vm1"\ntarget = "/mnt/src"\n')


def test_an_smb_only_backend_plans_auto_as_smb_and_the_core_probes_only_smb(source, servers):
    """The issue's check: no device protocol, only SMB -> auto is SMB; only SMB exports are
    read; the applied spec then plans nothing."""
    spec = spec_for(source)
    world = FakeWorld(FakeBackend(FakeVm("vm1", Capabilities(network=["smb"]))))
    probed: list[str] = []

    class Session:  # the part of core.Session that planning uses
        def probe_vm(self, vm, targets):
            return world.probe_vm(vm, targets)

        def exports(self, protocol):
            probed.append(protocol)
            return dict(world.host.exports[protocol])

    Session.servers = servers
    plan = core._plan(spec, "cli", State(), Session(), False, False)
    assert probed == ["smb"] and plan.choices[0].protocol == "smb"
    assert "no device share" in plan.choices[0].reason
