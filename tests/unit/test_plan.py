import pytest
from factories import applied_state, applied_vm, apply_journal, facts_for, fresh_vm, spec_of

from vmshare.errors import GuestError, NotFoundError, UsageError
from vmshare.facts import GuestFacts, GuestMount
from vmshare.plan.removal import removal_plan
from vmshare.plan.resolve import resolve
from vmshare.protocols import mount_tag
from vmshare.state import State


def plan_for(spec, vm, state=None, **kw):
    return resolve(spec, facts_for(spec, vm), state or State(), origin="cli", **kw)


def actions(plan):
    return [f"{s.layer}.{s.action}" for s in plan.steps]


def test_fresh_share_on_running_vm_is_hot_plugged_virtiofs():
    spec = spec_of("/srv/x testvm:/mnt/x")
    plan = plan_for(spec, fresh_vm())
    assert actions(plan) == [
        "hypervisor.attach_share",
        "guest.mkdir",
        "guest.mount",
        "guest.fstab_add",
        "guest.probe",
    ]
    attach = plan.steps[0]
    assert attach.args["scopes"] == ["running", "persistent"]
    assert attach.args["protocol"] == "virtiofs"
    assert attach.undo is not None and attach.undo.action == "detach_share"
    assert plan.choices[0].protocol == "virtiofs" and "POSIX" in plan.choices[0].semantics
    assert plan.steps[3].args["options"] == ["rw", "nofail"]
    assert plan.steps[4].args["writable"] is True
    assert not plan.blockers


def test_applied_spec_plans_nothing():
    spec = spec_of("/srv/x testvm:/mnt/x", "/srv/y testvm:/mnt/y")
    plan = plan_for(spec, applied_vm(spec), applied_state(spec))
    assert plan.empty and plan.steps == []


def test_mount_lost_after_reboot_without_persist_is_remounted_only():
    spec = spec_of("/srv/x testvm:/mnt/x persist=false")
    vm = applied_vm(spec)
    vm.guest.mounts.clear()
    assert actions(plan_for(spec, vm, applied_state(spec))) == ["guest.mount", "guest.probe"]


def test_readonly_auto_picks_9p_and_needs_a_restart_on_a_running_vm():
    spec = spec_of("/srv/x testvm:/mnt/x readonly=true")
    plan = plan_for(spec, fresh_vm())
    assert plan.choices[0].protocol == "9p"
    assert "refuses writes" in plan.choices[0].reason
    assert plan.blockers and "--restart" in plan.blockers[0]
    restarted = plan_for(spec, fresh_vm(), allow_restart=True)
    assert not restarted.blockers
    assert actions(restarted)[:2] == ["hypervisor.attach_share", "hypervisor.restart"]
    assert restarted.steps[0].args["scopes"] == ["persistent"]
    mount = next(s for s in restarted.steps if s.action == "mount")
    assert mount.args["options"][0] == "ro" and "trans=virtio" in mount.args["options"]
    assert restarted.steps[-1].args["writable"] is False


def test_readonly_virtiofs_is_refused_as_libvirt_refuses_it():
    spec = spec_of('/srv/x testvm:/mnt/x readonly=true protocol="virtiofs"')
    with pytest.raises(UsageError, match="libvirt refuses read-only virtiofs") as info:
        plan_for(spec, fresh_vm())
    assert "9p" in info.value.hint


def test_missing_shared_memory_is_added_and_needs_restart():
    spec = spec_of("/srv/x testvm:/mnt/x")
    vm = fresh_vm(shared_memory_config=False, shared_memory_live=False)
    plan = plan_for(spec, vm, allow_restart=True)
    assert actions(plan)[:3] == [
        "hypervisor.prepare",
        "hypervisor.attach_share",
        "hypervisor.restart",
    ]
    assert "shared memory" in plan.steps[2].reason


def test_no_acpi_means_no_hotplug():
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm(acpi=False))
    assert plan.blockers and "ACPI" in plan.blockers[0]


def test_stopped_vm_needs_permission_to_start():
    spec = spec_of("/srv/x testvm:/mnt/x")
    vm = fresh_vm(running=False, guest=GuestFacts())
    assert "not running" in plan_for(spec, vm).blockers[0]
    plan = plan_for(spec, vm, allow_restart=True)
    assert actions(plan)[:2] == ["hypervisor.attach_share", "hypervisor.start"]
    assert plan.steps[0].args == {
        "tag": mount_tag("testvm:/mnt/x"),
        "source": "/srv/x",
        "protocol": "virtiofs",
        "readonly": False,
        "scopes": ["persistent"],
    }


def test_missing_vm_and_missing_source_are_clear_errors():
    spec = spec_of("/srv/x testvm:/mnt/x")
    with pytest.raises(NotFoundError, match="VM 'testvm' not found") as info:
        plan_for(spec, fresh_vm(exists=False))
    assert "virsh" in info.value.hint
    with pytest.raises(NotFoundError, match="does not exist") as info:
        resolve(spec, facts_for(spec, fresh_vm(), sources_exist=False), State(), origin="cli")
    assert "--create" in info.value.hint


def test_create_makes_the_host_folder_with_an_undo_that_keeps_files():
    spec = spec_of("/srv/x testvm:/mnt/x create=true")
    plan = resolve(spec, facts_for(spec, fresh_vm(), sources_exist=False), State(), origin="cli")
    assert plan.steps[0].action == "mkdir" and plan.steps[0].layer == "host"
    assert plan.steps[0].undo is not None and plan.steps[0].undo.action == "rmdir_empty"


def test_unreachable_guest_is_an_error_with_a_hint():
    spec = spec_of("/srv/x testvm:/mnt/x")
    vm = fresh_vm(guest=GuestFacts(reachable=False, error="agent not responding"))
    with pytest.raises(GuestError, match="agent not responding") as info:
        plan_for(spec, vm)
    assert "qemu-guest-agent" in info.value.hint


def test_something_else_mounted_at_the_target_is_refused():
    spec = spec_of("/srv/x testvm:/mnt/x")
    vm = fresh_vm()
    vm.guest.mounts["/mnt/x"] = GuestMount(
        source="/dev/sdb", target="/mnt/x", fstype="ext4", options=[]
    )
    with pytest.raises(UsageError, match="already a mount point"):
        plan_for(spec, vm)


@pytest.mark.parametrize(
    ("option", "fragment"),
    [('owner="1:1"', "--owner"), ('protocol="native" owner="1:1"', "--owner")],
)
def test_unsupported_requests_are_usage_errors(option, fragment):
    with pytest.raises(UsageError, match=fragment):
        plan_for(spec_of(f"/srv/x testvm:/mnt/x {option}"), fresh_vm())


def test_removal_plan_undoes_in_reverse():
    spec = spec_of("/srv/x testvm:/mnt/x")
    plan = plan_for(spec, fresh_vm())
    state = apply_journal(spec, plan)
    removal = removal_plan(list(state.shares.values()))
    assert actions(removal) == [
        "guest.fstab_remove",
        "guest.unmount",
        "guest.rmdir_empty",
        "hypervisor.detach_share",
    ]


def test_changed_settings_remove_then_recreate():
    spec = spec_of("/srv/x testvm:/mnt/x")
    state = apply_journal(spec, plan_for(spec, fresh_vm()))
    changed = spec_of("/srv/other testvm:/mnt/x")
    facts = facts_for(changed, applied_vm(spec))
    with pytest.raises(UsageError, match="already shared") as info:
        resolve(changed, facts, state, origin="cli")
    assert "--replace" in info.value.hint
    plan = resolve(changed, facts, state, origin="cli", replace=True)
    assert "replaced" in plan.notes[0]
    # the mount point that the removal deletes is made again
    assert "guest.mkdir" in actions(plan)[4:]
    assert plan.removes == ["testvm:/mnt/x"]
    assert actions(plan)[:4] == [
        "guest.fstab_remove",
        "guest.unmount",
        "guest.rmdir_empty",
        "hypervisor.detach_share",
    ]
    assert "hypervisor.attach_share" in actions(plan)[4:]
    assert plan.steps[4].args["source"] == "/srv/other"


def test_prune_removes_only_shares_of_the_same_spec_file():
    both = spec_of("/srv/x testvm:/mnt/x", "/srv/y testvm:/mnt/y")
    state = apply_journal(both, plan_for(both, fresh_vm()))
    for record in state.shares.values():
        record.origin = "/specs/a.toml"
    state.shares["testvm:/mnt/y"].origin = "/specs/b.toml"
    only_x = spec_of("/srv/x testvm:/mnt/x")
    facts = facts_for(only_x, applied_vm(both))
    plan = resolve(only_x, facts, state, origin="/specs/a.toml", prune=True)
    assert plan.empty  # y belongs to another file
    state.shares["testvm:/mnt/y"].origin = "/specs/a.toml"
    plan = resolve(only_x, facts, state, origin="/specs/a.toml", prune=True)
    assert plan.removes == ["testvm:/mnt/y"]
    assert all(s.share == "testvm:/mnt/y" for s in plan.steps)


def test_tags_are_deterministic_short_and_distinct():
    tags = {mount_tag(f"vm:/mnt/{i}") for i in range(1000)}
    assert len(tags) == 1000
    assert all(len(t) <= 31 and t.isascii() for t in tags)
    assert mount_tag("vm:/mnt/1") == mount_tag("vm:/mnt/1")


def test_a_vms_warnings_are_plan_notes_once_per_vm():
    spec = spec_of("/srv/x testvm:/mnt/x", "/srv/y testvm:/mnt/y")
    vm = fresh_vm().model_copy(update={"warnings": ["certificate checks are off for x"]})
    plan = plan_for(spec, vm)
    assert plan.notes.count("certificate checks are off for x") == 1
    assert plan_for(spec, fresh_vm()).notes == []


def test_auto_says_which_measurement_ranks_its_pick():
    # libvirt's virtiofs, and nfs before smb for a VM without device shares: the reason quotes
    # the figure from benchmarks/defaults.py (docs/performance.md), not just "the best"
    spec = spec_of("/srv/x testvm:/mnt/x")
    reason = plan_for(spec, fresh_vm()).choices[0].reason
    assert (
        "best device share" in reason and "than 9p with Lima" in reason and "defaults.py" in reason
    )
    from vmshare.facts import Capabilities
    from vmshare.plan.choice import choose_protocol

    vm = fresh_vm()
    network = vm.model_copy(update={"capabilities": Capabilities(network=["nfs", "smb"])})
    choice = choose_protocol(spec.share[0], network)
    assert choice.protocol == "nfs" and "than smb" in choice.reason
    smb_only = vm.model_copy(update={"capabilities": Capabilities(network=["smb"])})
    assert "than smb" not in choose_protocol(spec.share[0], smb_only).reason
