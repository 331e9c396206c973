"""vmshare's record of a share kept on the VM (``Capabilities.records``): planned as a
hypervisor step with its undo for backends that keep one only, skipped once in place, forgotten by
remove and by an orphan clean-up; and vSphere's extraConfig form, where the last value of a key
wins and an empty one means deleted."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest
from pyVmomi import vim

from vmshare.apply import Journal, execute
from vmshare.backends.fake import FakeBackend, FakeVm, FakeWorld
from vmshare.backends.vsphere import record
from vmshare.facts import Capabilities
from vmshare.plan.network import HostServers
from vmshare.plan.removal import orphan_plan, removal_plan
from vmshare.plan.resolve import resolve
from vmshare.protocols import mount_tag
from vmshare.spec import HostSettings, NfsHost, SmbHost, parse_spec
from vmshare.state import State, StateStore

KEY = "vm1:/mnt/src"
TAG = mount_tag(KEY)
RECORDS = Capabilities(records=True, record_where="extraConfig guestinfo.vmshare.{tag}")


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


def spec_for(source, readonly=False):
    return parse_spec(
        f'[[share]]\nsource = "{source}"\nvm = "vm1"\ntarget = "/mnt/src"\n'
        f'owner = "33:33"\nreadonly = {str(readonly).lower()}\n'
    )


def world(capabilities=RECORDS):
    return FakeWorld(FakeBackend(FakeVm("vm1", capabilities.model_copy(deep=True))))


def plan_now(spec, w, state, servers, **kw):
    facts = w.facts(spec)
    facts.host_name = "ws-1"
    return resolve(spec, facts, state, origin="cli", servers=servers, **kw)


def steps(plan):
    return [f"{s.layer}.{s.action}" for s in plan.steps]


def test_a_records_vm_gets_its_record_after_host_and_hypervisor_steps_before_the_guest(
    source, servers
):
    plan = plan_now(spec_for(source), world(), State(), servers)
    names = steps(plan)
    at = names.index("hypervisor.record_share")
    assert all(n.startswith(("host.", "hypervisor.")) for n in names[:at])
    assert all(n.startswith("guest.") for n in names[at + 1 :]) and names[at + 1 :]
    step = plan.steps[at]
    assert step.summary == f"record the share on VM vm1 (extraConfig guestinfo.vmshare.{TAG})"
    assert step.args["tag"] == TAG
    assert step.args["record"] == {
        "key": KEY,
        "source": str(source),
        "host": "ws-1",
        "protocol": "nfs",
        "target": "/mnt/src",
        "readonly": False,
        "created": plan.records[KEY].created,  # the journal's, so a re-plan matches
    }
    assert step.undo is not None and step.undo.action == "forget_share"
    assert step.undo.args == {"tag": TAG}


def test_a_vm_without_records_gets_no_record_step(source, servers):
    plan = plan_now(spec_for(source), world(Capabilities()), State(), servers)
    assert plan.steps and "hypervisor.record_share" not in steps(plan)


def apply(plan, w, store):
    state = store.load()
    execute(plan, w, Journal(store, state, plan))


def test_applied_replans_nothing_a_lost_record_is_written_again_and_remove_forgets(
    source, servers, tmp_path
):
    spec, w, store = spec_for(source), world(), StateStore(tmp_path / "state")
    apply(plan_now(spec, w, store.load(), servers), w, store)
    assert w.backend.vms["vm1"].records[TAG]["host"] == "ws-1"
    assert plan_now(spec, w, store.load(), servers).steps == []

    del w.backend.vms["vm1"].records[TAG]  # someone deleted the key
    again = plan_now(spec, w, store.load(), servers)
    assert steps(again) == ["hypervisor.record_share"]
    apply(again, w, store)
    assert plan_now(spec, w, store.load(), servers).steps == []

    state = store.load()
    removal = removal_plan(list(state.shares.values()))
    assert "hypervisor.forget_share" in steps(removal)  # once per journalled record_share
    apply(removal, w, store)
    assert w.backend.vms["vm1"].records == {} and w.empty()


def test_a_record_the_journal_does_not_explain_is_taken_in_again(source, servers, tmp_path):
    spec, w, store = spec_for(source), world(), StateStore(tmp_path / "state")
    apply(plan_now(spec, w, store.load(), servers), w, store)
    state = store.load()
    state.shares[KEY].steps = [s for s in state.shares[KEY].steps if s.action != "record_share"]
    assert steps(plan_now(spec, w, state, servers)) == ["hypervisor.record_share"]


def test_a_changed_share_forgets_the_old_record_and_writes_the_new_one(source, servers, tmp_path):
    w, store = world(), StateStore(tmp_path / "state")
    apply(plan_now(spec_for(source), w, store.load(), servers), w, store)
    plan = plan_now(spec_for(source, readonly=True), w, store.load(), servers, replace=True)
    names = steps(plan)
    assert names.index("hypervisor.forget_share") < names.index("hypervisor.record_share")
    apply(plan, w, store)
    assert w.backend.vms["vm1"].records[TAG]["readonly"] is True


def test_an_orphan_record_is_forgotten_and_none_is_nothing_to_do():
    vm = world().probe_vm("vm1", ["/mnt/src"])
    assert orphan_plan(KEY, vm, {}, None).steps == []
    vm.records[TAG] = {"key": KEY, "host": "elsewhere"}
    plan = orphan_plan(KEY, vm, {}, None)
    assert [s.action for s in plan.steps if s.layer == "hypervisor"] == ["forget_share"]
    assert plan.steps[-1].args == {"tag": TAG}
    assert "guestinfo.vmshare." + TAG in plan.steps[-1].summary


def test_the_fake_refuses_records_without_the_capability():
    from vmshare.errors import HypervisorError

    backend = FakeBackend(FakeVm("vm1"))
    with pytest.raises(HypervisorError, match="keeps no record"):
        backend.record_share(vm="vm1", tag=TAG, record={})


# -------------------------------------------------------------- vSphere's extraConfig form


@dataclass
class Option:  # what pyVmomi's OptionValue looks like to record.records
    key: str
    value: object


def test_the_last_value_of_a_key_wins_and_empty_means_deleted():
    a, b, c = "vmshare-aaaa", "vmshare-bbbb", "vmshare-cccc"
    options = [
        Option("guestinfo.vmshare." + a, '{"key":"vm:/a","v":1}'),
        Option("guestinfo.other", '{"key":"not ours"}'),
        Option("guestinfo.vmshare." + b, '{"key":"vm:/b"}'),
        Option("guestinfo.vmshare." + a, '{"key":"vm:/a","v":2}'),  # appended again
        Option("guestinfo.vmshare." + b, ""),  # deleted the simulator's way
        Option("guestinfo.vmshare." + c, ""),
        Option("guestinfo.vmshare." + c, '{"key":"vm:/c"}'),  # made again after deletion
        Option("guestinfo.vmshare.junk", "not json"),
        Option("guestinfo.vmshare.list", "[1, 2]"),
        Option("guestinfo.vmshare.none", None),
    ]
    assert record.records(options) == {a: {"key": "vm:/a", "v": 2}, c: {"key": "vm:/c"}}
    assert record.records(None) == record.records([]) == {}


def test_real_option_values_and_the_reconfig_spec_round_trip():
    value = {"key": KEY, "source": "/src", "readonly": False}
    spec = record.spec_setting(TAG, value)
    assert isinstance(spec, vim.vm.ConfigSpec)
    (option,) = spec.extraConfig
    assert option.key == f"guestinfo.vmshare.{TAG}" and json.loads(option.value) == value
    forget = record.spec_setting(TAG, None).extraConfig[0]
    assert (forget.key, forget.value) == (option.key, "")
    assert record.records([option]) == {TAG: value}
    assert record.records([option, forget]) == {}


@pytest.mark.parametrize("tag", ["", "a.b", "a b", "x" * 65, "a\nb", "ä"])
def test_a_key_is_made_only_from_a_share_tag(tag):
    with pytest.raises(ValueError, match="not a share tag"):
        record.key_for(tag)


# ------------------------------------------------------ read back: status and list --vm


@pytest.fixture
def made(source, servers, tmp_path, monkeypatch):
    """A share applied to a records-keeping fake VM; every Session gets that fake backend."""
    from vmshare import core

    w = world()
    monkeypatch.setattr(core, "load_backend", lambda settings: w.backend)
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(tmp_path / "no-host.toml"))
    store = StateStore(tmp_path / "state")
    apply(plan_now(spec_for(source), w, store.load(), servers), w, store)
    return w


def cli_json(capsys, *args):
    from vmshare.cli import main

    with pytest.raises(SystemExit) as info:
        main([*args, "--json"])
    return info.value.code, json.loads(capsys.readouterr().out)


def test_status_checks_the_vms_record_of_each_share(made, capsys):
    code, doc = cli_json(capsys, "status", "vm1")
    (row,) = doc["data"]
    assert row["checks"]["record"] == "ok"
    made.backend.vms["vm1"].records.clear()
    code, doc = cli_json(capsys, "status", "vm1")
    (row,) = doc["data"]
    assert code == 1 and row["checks"]["record"] == "missing"
    assert any("guestinfo.vmshare." + TAG in p for p in row["problems"])


def test_status_shows_a_share_only_the_vms_record_names_as_made_elsewhere(made, capsys):
    other = mount_tag("vm1:/mnt/ci")
    made.backend.vms["vm1"].records[other] = {
        "key": "vm1:/mnt/ci",
        "target": "/mnt/ci",
        "source": "/builds/x",
        "host": "ci-runner-7",
        "protocol": "smb",
        "readonly": True,
    }
    _, doc = cli_json(capsys, "status", "vm1")
    mine, theirs = doc["data"]
    assert mine["key"] == KEY and theirs["key"] == "vm1:/mnt/ci"
    assert theirs["healthy"] and theirs["checks"]["record"] == "ok"
    assert "ci-runner-7" in theirs["label"] and "made elsewhere" in theirs["problems"][0]


def test_list_vm_names_this_workstations_shares_and_the_ones_made_elsewhere(
    made, capsys, tmp_path, monkeypatch
):
    _, doc = cli_json(capsys, "list", "--vm", "vm1")
    (row,) = doc["data"]
    assert row["key"] == KEY and row["made"] == "here" and row["record"] == "recorded"
    assert row["host"] == "ws-1"

    # another workstation: an empty state dir, the VM's settings from a spec file
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path / "other-state"))
    spec_file = tmp_path / "vmshare.toml"
    spec_file.write_text('[vm.vm1]\nbackend = "libvirt"\n')
    _, doc = cli_json(capsys, "list", "--vm", "vm1", "-f", str(spec_file))
    (row,) = doc["data"]
    assert (row["key"], row["made"], row["host"], row["record"]) == (
        KEY,
        "elsewhere",
        "ws-1",
        "recorded",
    )
    assert row["source"].endswith("/src") and row["protocol"] == "nfs"
    assert cli_json(capsys, "list")[1]["data"] == []  # the state alone knows nothing

    from vmshare.cli import main

    with pytest.raises(SystemExit):
        main(["list", "--vm", "vm1"])
    text = capsys.readouterr().out
    assert "made on" in text and "ws-1" in text and "/mnt/src" in text


def test_list_vm_of_a_vm_without_records_and_of_a_missing_vm(made, capsys, tmp_path):
    made.backend.vms["vm1"].capabilities = Capabilities()
    made.backend.vms["vm1"].records.clear()
    _, doc = cli_json(capsys, "list", "--vm", "vm1")
    assert [(r["made"], r["record"]) for r in doc["data"]] == [("here", "n/a")]
    code, doc = cli_json(capsys, "list", "--vm", "ghost")
    assert code == 1 and "not found" in doc["data"]["error"]["message"]
    code, doc = cli_json(capsys, "list", "vm1", "--vm", "vm2")
    assert code == 2 and "two VMs" in doc["data"]["error"]["message"]
