"""A device config that changes only while the VM is off (VirtualBox through VBoxManage: a
permanent folder needs the write lock): the planner asks a running VM for the config alone, the
plan stops the VM around it (--restart) or is blocked before any change, a rollback replays the
steps between stop and start with the VM off, and a removal is planned the same way."""

from __future__ import annotations

import pytest

from vmshare.apply import Journal, execute
from vmshare.backends.fake import FakeBackend, FakeVm, FakeWorld
from vmshare.errors import ApplyFailed, GuestError
from vmshare.facts import Capabilities, DeviceCapability
from vmshare.plan.power import stop_around
from vmshare.plan.removal import removal_plan
from vmshare.plan.resolve import resolve
from vmshare.protocols import mount_tag
from vmshare.spec import parse_spec
from vmshare.state import State, StateStore

KEY = "vm1:/mnt/src"
TAG = mount_tag(KEY)
OFF = "the tool adds a permanent folder only to a stopped VM (it needs the VM's write lock)"


def world(needs_off: str | None = OFF, running: bool = True) -> FakeWorld:
    vboxsf = DeviceCapability(
        protocol="vboxsf",
        semantics="vboxsf semantics",
        config_follows_persist=True,
        config_needs_off=needs_off,
        scope_words={"running": "transient folder", "persistent": "permanent folder"},
    )
    caps = Capabilities(devices=[vboxsf], network=[])
    return FakeWorld(FakeBackend(FakeVm("vm1", caps, running=running)))


def spec(tmp_path, persist: bool = True):
    (tmp_path / "src").mkdir(exist_ok=True)
    return parse_spec(
        f'[[share]]\nsource = "{tmp_path / "src"}"\nvm = "vm1"\ntarget = "/mnt/src"\n'
        f"persist = {str(persist).lower()}\n"
    )


def plan_for(w: FakeWorld, the_spec, state: State, *, allow_restart: bool):
    plan = resolve(the_spec, w.facts(the_spec), state, origin="cli", allow_restart=allow_restart)
    stop_around(plan, w.backend.needs_off, allow_restart=allow_restart)
    return plan


def names(plan) -> list[str]:
    return [f"{s.layer}.{s.action}" for s in plan.steps]


def test_without_restart_the_plan_is_blocked_and_says_why_and_what_else(tmp_path):
    w = world()
    plan = plan_for(w, spec(tmp_path), State(), allow_restart=False)
    (attach,) = [s for s in plan.steps if s.action == "attach_share"]
    assert attach.args["scopes"] == ["persistent"]  # no transient folder: the VM restarts
    assert "(permanent folder)" in attach.summary
    assert attach.reason == (
        f"the VM runs and the share persists: {OFF}, so the VM is stopped for the permanent "
        "folder and starts with it"
    )
    assert plan.blockers == [
        f"{OFF}: pass --restart so vmshare stops VM 'vm1' for it (graceful shutdown) and starts "
        "it again, or change it on a stopped VM"
    ]
    assert "hypervisor.stop" not in names(plan)


def test_with_restart_the_vm_is_stopped_around_the_config_and_started_again(tmp_path):
    w, store = world(), StateStore(tmp_path / "state")
    the_spec, state = spec(tmp_path), State()
    plan = plan_for(w, the_spec, state, allow_restart=True)
    assert not plan.blockers
    assert names(plan) == [
        "hypervisor.stop",
        "hypervisor.attach_share",
        "hypervisor.start",
        "guest.mkdir",
        "guest.mount",
        "guest.fstab_add",
        "guest.probe",
    ]
    stop, _, start = plan.steps[:3]
    assert stop.reason == OFF and stop.undo is not None and stop.undo.action == "start"
    assert start.undo is not None and start.undo.action == "stop"
    execute(plan, w, Journal(store, state, plan))
    vm = w.backend.vms["vm1"]
    assert vm.running and TAG in vm.persistent and TAG in vm.live
    assert w.backend.calls == ["stop", f"attach_share {TAG} persistent", "start"]
    record = state.shares[KEY]
    assert "stop" not in [s.action for s in record.steps]  # the run's own, not the share's
    assert plan_for(w, the_spec, state, allow_restart=False).steps == []  # applied: nothing


def rolled_back_after_a_refused_mount(w, plan, store, state):
    """Run ``plan`` with vm1's guest refusing the mount: it rolls back to everything as before,
    the VM running with no share device."""

    def mount(**_kw):
        raise GuestError("the guest refuses the mount")

    w.guests["vm1"].mount = mount  # type: ignore[method-assign]
    with pytest.raises(ApplyFailed) as info:
        execute(plan, w, Journal(store, state, plan))
    assert "everything is as before" in info.value.message
    vm = w.backend.vms["vm1"]
    assert vm.running and vm.persistent == {} and vm.live == {}


def test_a_rollback_detaches_with_the_vm_off_and_leaves_it_running(tmp_path):
    w, store = world(), StateStore(tmp_path / "state")
    the_spec, state = spec(tmp_path), State()
    plan = plan_for(w, the_spec, state, allow_restart=True)
    rolled_back_after_a_refused_mount(w, plan, store, state)
    assert w.backend.calls[3:] == ["stop", f"detach_share {TAG} running,persistent", "start"]
    assert KEY not in state.shares


def test_removal_stops_the_vm_around_the_detach_or_is_blocked_before_any_change(tmp_path):
    w, store = world(), StateStore(tmp_path / "state")
    the_spec, state = spec(tmp_path), State()
    plan = plan_for(w, the_spec, state, allow_restart=True)
    execute(plan, w, Journal(store, state, plan))
    record = state.shares[KEY]
    blocked = removal_plan([record])
    stop_around(blocked, w.backend.needs_off, allow_restart=False)
    assert blocked.blockers and blocked.blockers[0].startswith(OFF)
    assert "hypervisor.stop" not in names(blocked)
    removal = removal_plan([record], allow_restart=True)
    stop_around(removal, w.backend.needs_off, allow_restart=True)
    assert names(removal) == [
        "guest.fstab_remove",
        "guest.unmount",
        "guest.rmdir_empty",
        "hypervisor.stop",
        "hypervisor.detach_share",
        "hypervisor.start",
    ]
    execute(removal, w, Journal(store, state, removal))
    vm = w.backend.vms["vm1"]
    assert vm.running and vm.persistent == {} and KEY not in state.shares


def test_without_persist_a_running_vm_gets_the_running_device_only(tmp_path):
    w = world()
    plan = plan_for(w, spec(tmp_path, persist=False), State(), allow_restart=False)
    assert not plan.blockers
    (attach,) = [s for s in plan.steps if s.action == "attach_share"]
    assert attach.args["scopes"] == ["running"]
    assert "a transient folder only, gone when the VM powers off" in (attach.reason or "")
    assert "hypervisor.stop" not in names(plan)


def test_a_config_that_changes_while_running_gets_both_scopes_and_no_stop(tmp_path):
    w = world(needs_off=None)  # VirtualBox's API: the session machine of a shared lock
    plan = plan_for(w, spec(tmp_path), State(), allow_restart=False)
    assert not plan.blockers
    (attach,) = [s for s in plan.steps if s.action == "attach_share"]
    assert attach.args["scopes"] == ["running", "persistent"]
    assert "a transient folder now and the permanent folder too" in (attach.reason or "")
    assert "hypervisor.stop" not in names(plan)


def test_a_stopped_vm_needs_no_stop(tmp_path):
    w = world(running=False)
    plan = plan_for(w, spec(tmp_path), State(), allow_restart=True)
    assert names(plan)[:2] == ["hypervisor.attach_share", "hypervisor.start"]
    assert "hypervisor.stop" not in names(plan)


def test_a_rollback_after_a_restart_for_a_device_that_cannot_unplug_restarts_again(tmp_path):
    # 9p: the device reaches the running VM only through the restart, and leaves it only at
    # another: a rollback that stopped at the detach left it live in the guest (crash harness)
    ninep = DeviceCapability(
        protocol="vboxsf",
        semantics="9p-like",
        hotplug=False,
        hotplug_off="this device cannot be hot-plugged",
        unplug=False,
    )
    w = FakeWorld(FakeBackend(FakeVm("vm1", Capabilities(devices=[ninep], network=[]))))
    store, the_spec, state = StateStore(tmp_path / "state"), spec(tmp_path), State()
    plan = plan_for(w, the_spec, state, allow_restart=True)
    assert "hypervisor.restart" in names(plan)
    rolled_back_after_a_refused_mount(w, plan, store, state)
    assert w.backend.calls[-2:] == [f"detach_share {TAG} running,persistent", "restart"]
