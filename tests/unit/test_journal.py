"""The write-ahead journal, replacing as a transaction, Ctrl-C at every point, records that can
always be removed, and the planner's refusals (nesting, duplicates, paths virtiofs cannot carry)."""

import os
import signal

import pytest
from factories import applied_state, applied_vm, facts_for, fresh_vm, spec_of
from test_apply import Recorder
from test_plan import actions, plan_for

from vmshare.apply import FAULT_ENV, Journal, execute
from vmshare.errors import ApplyFailed, Interrupted, UsageError
from vmshare.facts import FsDevice
from vmshare.plan.removal import recovery_plan, removal_plan
from vmshare.plan.resolve import resolve
from vmshare.plan.step import Step
from vmshare.protocols import mount_tag
from vmshare.state import State, StateStore


class Killed(BaseException):
    """Stands for SIGKILL: nothing in vmshare catches it, as nothing survives a real one."""


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


def run(plan, runtime, store, progress=None):
    return execute(plan, runtime, Journal(store, store.load(), plan), progress)


class Killing(Recorder):
    """Dies (uncatchably) right after ``action`` took effect, before the journal hears of it."""

    def __init__(self, action):
        super().__init__()
        self.action = action

    def layer(self, layer, vm):
        inner = super().layer(layer, vm)
        killing = self

        class Layer:
            def __getattr__(self, name):
                call = getattr(inner, name)

                def wrapped(**kwargs):
                    call(**kwargs)
                    if f"{layer}.{name}" == killing.action:
                        raise Killed

                return wrapped

        return Layer()


def test_a_step_is_journalled_as_pending_before_it_runs(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    seen = []

    class Peeking(Recorder):
        def layer(self, layer, vm):
            seen.append([s.action for s in store.load().shares["testvm:/mnt/x"].pending])
            return super().layer(layer, vm)

    run(plan, Peeking(), store)
    assert seen[0] == ["attach_share"]
    assert seen[1] == ["mkdir"]
    assert store.load().shares["testvm:/mnt/x"].pending == []


def test_a_kill_after_the_effect_leaves_the_step_pending_and_remove_undoes_it(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    with pytest.raises(Killed):
        run(plan, Killing("guest.mount"), store)
    record = store.load().shares["testvm:/mnt/x"]
    assert [s.action for s in record.steps] == ["attach_share", "mkdir"]
    assert [s.action for s in record.pending] == ["mount"]
    removal = removal_plan([record])
    assert actions(removal) == [
        "guest.unmount",
        "guest.rmdir_empty",
        "hypervisor.detach_share",
    ]
    run(removal, Recorder(), store)
    assert store.load().shares == {}


def test_recovery_undoes_only_the_pending_step_and_keeps_the_rest(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    with pytest.raises(Killed):
        run(plan, Killing("guest.mount"), store)
    recovery = recovery_plan(list(store.load().shares.values()))
    assert actions(recovery) == ["guest.unmount"]
    run(recovery, Recorder(), store)
    record = store.load().shares["testvm:/mnt/x"]
    assert record.pending == [] and [s.action for s in record.steps] == [
        "attach_share",
        "mkdir",
    ]


def test_a_kill_on_the_first_step_leaves_a_record_that_remove_clears(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    with pytest.raises(Killed):
        run(plan, Killing("hypervisor.attach_share"), store)
    record = store.load().shares["testvm:/mnt/x"]
    assert record.steps == [] and len(record.pending) == 1
    runtime = Recorder()
    run(removal_plan([record]), runtime, store)
    assert runtime.calls == ["hypervisor.detach_share"]
    assert store.load().shares == {}


def test_a_record_without_any_undo_is_still_removed(store):
    template = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm()).records["testvm:/mnt/x"]
    state = State()
    probe = Step(
        share=template.key, layer="guest", action="probe", vm="testvm", summary="probe", args={}
    )
    state.shares[template.key] = template.model_copy(update={"steps": [probe]})
    store.save(state)
    plan = removal_plan([store.load().shares[template.key]])
    assert plan.steps == []
    run(plan, Recorder(), store)
    assert store.load().shares == {}


def test_the_failed_step_is_undone_too_because_it_may_have_half_happened(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    runtime = Recorder(fail={"hypervisor.attach_share"})
    with pytest.raises(ApplyFailed) as info:
        run(plan, runtime, store)
    assert runtime.calls == ["hypervisor.attach_share", "hypervisor.detach_share"]
    assert "as before" in info.value.message
    assert store.load().shares == {}


def test_a_step_whose_target_refused_it_is_not_undone(store):
    """A refusal that proves the action never ran (a paused VM, a refused connection) leaves
    nothing of the step: its undo, which would meet the same refusal, is skipped."""
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    runtime = Recorder(refused={"guest.mkdir", "guest.rmdir_empty"})
    with pytest.raises(ApplyFailed) as info:
        run(plan, runtime, store)
    assert runtime.calls == ["hypervisor.attach_share", "guest.mkdir", "hypervisor.detach_share"]
    assert "undid 1 step(s)" in info.value.message and "as before" in info.value.message
    assert store.load().shares == {}


# ------------------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_between_steps_waits_for_the_journal_then_rolls_everything_back(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    runtime = Recorder()

    def progress(event, step):
        if event == "done" and step.action == "mkdir":
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(ApplyFailed, match="interrupted") as info:
        run(plan, runtime, store, progress)
    assert info.value.exit_code == 3
    assert runtime.calls == [
        "hypervisor.attach_share",
        "guest.mkdir",
        "guest.rmdir_empty",
        "hypervisor.detach_share",
    ]
    assert store.load().shares == {}


def test_ctrl_c_before_any_change_exits_130_and_changes_nothing(store, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "intent:0:int")
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    runtime = Recorder()
    with pytest.raises(Interrupted) as info:
        run(plan, runtime, store)
    assert info.value.exit_code == 130
    assert runtime.calls == [] and store.load().shares == {}


def test_ctrl_c_after_the_last_step_still_rolls_back(store, monkeypatch):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    monkeypatch.setenv(FAULT_ENV, f"completed:{len(plan.steps) - 1}:int")
    runtime = Recorder()
    with pytest.raises(ApplyFailed, match="interrupted"):
        run(plan, runtime, store)
    assert runtime.calls[-1] == "hypervisor.detach_share"
    assert store.load().shares == {}


# ----------------------------------------------------------------- replace as a transaction


def test_add_over_a_share_with_other_settings_is_refused_without_replace():
    spec = spec_of("/srv/x testvm:/mnt/x")
    changed = spec_of("/srv/x testvm:/mnt/x mount_options=['noatime']")
    with pytest.raises(UsageError, match="already shared") as info:
        plan_for(changed, applied_vm(spec), applied_state(spec))
    assert "--replace" in info.value.hint


def test_a_failed_replacement_restores_the_old_share_exactly(store):
    spec = spec_of("/srv/x testvm:/mnt/x")
    store.save(applied_state(spec))
    before = store.load().shares["testvm:/mnt/x"]
    changed = spec_of("/srv/x testvm:/mnt/x mount_options=['noatime']")
    facts = facts_for(changed, applied_vm(spec))
    plan = resolve(changed, facts, store.load(), origin="cli", replace=True)

    class NewMountFails(Recorder):  # the old share's mount (no noatime) works again
        def layer(self, layer, vm):
            inner = super().layer(layer, vm)

            class Layer:
                def __getattr__(self, name):
                    call = getattr(inner, name)

                    def wrapped(**kwargs):
                        call(**kwargs)
                        if name == "mount" and "noatime" in kwargs["options"]:
                            raise UsageError("the new mount broke")

                    return wrapped

            return Layer()

    runtime = NewMountFails()
    with pytest.raises(ApplyFailed, match="restored") as info:
        run(plan, runtime, store)
    assert info.value.exit_code == 3
    removal = [f"{s.layer}.{s.action}" for s in removal_plan([before]).steps]
    assert runtime.calls[: len(removal)] == removal
    # after the failed mount (and its undo, and the new mount point's): the old share again
    redo = [f"{s.layer}.{s.action}" for s in before.steps if s.undo is not None]
    assert runtime.calls[-len(redo) :] == redo
    after = store.load().shares["testvm:/mnt/x"]
    assert after.requested == before.requested and after.steps == before.steps


def test_a_successful_replacement_journals_the_new_share_only(store):
    spec = spec_of("/srv/x testvm:/mnt/x")
    store.save(applied_state(spec))
    changed = spec_of("/srv/x testvm:/mnt/x mount_options=['noatime']")
    plan = resolve(
        changed, facts_for(changed, applied_vm(spec)), store.load(), origin="cli", replace=True
    )
    run(plan, Recorder(), store)
    record = store.load().shares["testvm:/mnt/x"]
    mount = next(s for s in record.steps if s.action == "mount")
    assert "noatime" in mount.args["options"]
    assert [s.action for s in record.steps].count("mount") == 1


# ---------------------------------------------------------------- what the planner refuses


@pytest.mark.parametrize(
    "second", ["/srv/y testvm:/mnt/x/inner", "/srv/y testvm:/mnt", "/srv/x testvm:/mnt/other"]
)
def test_nested_targets_and_one_folder_twice_in_one_vm_are_refused(second):
    spec = spec_of("/srv/x testvm:/mnt/x", second)
    with pytest.raises(UsageError, match=r"nest|already shared into VM"):
        plan_for(spec, fresh_vm())


def test_nesting_counts_shares_vmshare_already_made():
    existing = spec_of("/srv/x testvm:/mnt/x")
    new = spec_of("/srv/y testvm:/mnt/x/inner")
    with pytest.raises(UsageError, match="nest"):
        plan_for(new, fresh_vm(), applied_state(existing))


def test_side_by_side_and_other_vms_are_fine():
    spec = spec_of("/srv/x testvm:/mnt/x", "/srv/y testvm:/mnt/xy", "/srv/x other:/mnt/x")
    facts = facts_for(spec, fresh_vm())
    facts.vms["other"] = fresh_vm("other")
    assert resolve(spec, facts, State(), origin="cli").steps


@pytest.mark.parametrize("name", ["co,mma", "back\\slash"])
def test_paths_virtiofs_cannot_carry_are_refused_up_front(name):
    spec = spec_of(f"/srv/{name} testvm:/mnt/x".replace("\\", "\\\\"))
    with pytest.raises(UsageError, match="virtiofs cannot carry") as info:
        plan_for(spec, fresh_vm())
    assert "9p" in info.value.hint
    ninep = spec_of(f'/srv/{name} testvm:/mnt/x protocol="9p"'.replace("\\", "\\\\"))
    assert plan_for(ninep, fresh_vm(), allow_restart=True).steps


# ------------------------------------------------------------------ paths and parent folders


@pytest.mark.parametrize("spelling", ["//mnt/ds", "/mnt//ds/", "/mnt/./ds", "///mnt/ds/."])
def test_guest_paths_have_one_spelling(spelling):
    spec = spec_of(f"/srv/x testvm:{spelling}")
    assert spec.share[0].target == "/mnt/ds"
    state = applied_state(spec_of("/srv/x testvm:/mnt/ds"))
    assert state.find(f"testvm:{spelling}") is state.shares["testvm:/mnt/ds"]


def test_mkdir_records_the_parent_folders_it_makes_and_removes_only_those():
    spec = spec_of("/srv/x testvm:/srv/deep/er/x")
    vm = fresh_vm()
    vm.guest.existing_dirs = ["/srv"]
    mkdir = next(s for s in plan_for(spec, vm).steps if s.action == "mkdir")
    assert mkdir.args["path"] == "/srv/deep/er/x"
    assert mkdir.undo is not None
    assert mkdir.undo.args["parents"] == ["/srv/deep/er", "/srv/deep"]


def test_objects_no_journal_explains_get_their_steps_so_remove_can_clean_them():
    spec = spec_of("/srv/x testvm:/mnt/x")
    tag = mount_tag("testvm:/mnt/x")
    device = FsDevice(tag=tag, source="/srv/x", protocol="virtiofs")
    vm = fresh_vm(persistent_devices={tag: device}, running_devices={tag: device})
    plan = plan_for(spec, vm)
    attach = plan.steps[0]
    assert attach.action == "attach_share" and attach.undo is not None
    # the backend's attach is a no-op then
    assert attach.args["scopes"] == ["running", "persistent"]


# ------------------------------------------------------- objects that no journal explains


def test_remove_without_a_record_cleans_what_carries_the_share_names():
    from vmshare.facts import GuestMount
    from vmshare.plan.removal import orphan_plan

    key = "testvm:/mnt/x"
    tag = mount_tag(key)
    device = FsDevice(tag=tag, source="/srv/x", protocol="virtiofs")
    vm = fresh_vm(persistent_devices={tag: device}, running_devices={tag: device})
    vm.guest.mounts["/mnt/x"] = GuestMount(
        source=tag, target="/mnt/x", fstype="virtiofs", options=[]
    )
    vm.guest.fstab_entries[tag] = f"{tag} /mnt/x virtiofs rw,nofail 0 0"
    plan = orphan_plan(key, vm, {}, None)
    assert actions(plan) == [
        "guest.unmount",
        "guest.fstab_remove",
        "guest.remove_file",
        "hypervisor.detach_share",
    ]
    # somebody else's mount at the same path is not touched, and nothing found is nothing
    vm.guest.mounts["/mnt/x"] = GuestMount(
        source="/dev/sdb1", target="/mnt/x", fstype="ext4", options=[]
    )
    vm.guest.fstab_entries.clear()
    vm.persistent_devices.clear()
    vm.running_devices.clear()
    assert orphan_plan(key, vm, {}, None).steps == []


def test_status_reports_devices_and_fstab_entries_no_record_explains():
    from vmshare.status import _unrecorded

    tag = mount_tag("testvm:/mnt/lost")
    device = FsDevice(tag=tag, source="/srv/lost", protocol="virtiofs")
    vm = fresh_vm(persistent_devices={tag: device})
    vm.guest.fstab_entries[tag] = f"{tag} /mnt/lost virtiofs rw,nofail 0 0"
    vm.persistent_devices["not-ours"] = FsDevice(tag="not-ours", source="/x", protocol="9p")
    rows = _unrecorded("testvm", vm, known_tags=set())
    assert [r.key for r in rows] == ["testvm:/mnt/lost"]
    assert not rows[0].healthy and "vmshare remove testvm:/mnt/lost" in rows[0].problems[0]
    assert _unrecorded("testvm", vm, known_tags={tag}) == []


def test_ctrl_c_after_a_step_without_undo_leaves_no_record(store, tmp_path, monkeypatch):
    """smb_account has no undo: a rollback right after it must not leave an empty record."""
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    account = Step(
        share="testvm:/mnt/x", layer="host", action="smb_account", vm="testvm", summary="acct"
    )
    plan.steps.insert(0, account)
    monkeypatch.setenv(FAULT_ENV, "completed:0:int")
    with pytest.raises(ApplyFailed, match="interrupted"):
        run(plan, Recorder(), store)
    assert store.load().shares == {}


def test_remove_without_a_record_also_drops_the_share_names_server_entries(tmp_path):
    from test_netplan import servers

    from vmshare.plan.removal import orphan_plan

    key = "testvm:/mnt/x"
    tag = mount_tag(key)
    srv = servers(tmp_path)
    plan = orphan_plan(key, fresh_vm(), {"nfs": {tag: "x"}, "smb": {tag: "y"}}, srv)
    unexports = [s for s in plan.steps if s.layer == "host"]
    assert [s.action for s in unexports] == ["nfs_unexport", "smb_unshare"]
    assert unexports[0].args["exporter"] == srv.nfs.name
    assert all(s.args["entry_id"] == tag for s in unexports)
    assert orphan_plan(key, fresh_vm(), {"nfs": {"other": "x"}}, srv).steps == []
