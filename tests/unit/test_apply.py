import os
import signal

import pytest
from factories import fresh_vm, spec_of
from test_plan import plan_for

from vmshare.apply import Journal, execute
from vmshare.errors import ApplyFailed, GuestError, RollbackIncomplete, never_ran
from vmshare.plan.removal import removal_plan
from vmshare.state import StateStore


class Recorder:
    """Runtime whose layers record every action; ``fail`` names actions that raise."""

    def __init__(self, fail=(), interrupt=(), fail_undo=(), refused=()):
        self.calls: list[str] = []
        self.fail, self.interrupt, self.fail_undo = set(fail), set(interrupt), set(fail_undo)
        self.refused = set(refused)  # actions whose target refuses them: they never ran

    def layer(self, layer, vm):
        recorder = self

        class Layer:
            def __getattr__(self, action):
                def call(**kwargs):
                    name = f"{layer}.{action}"
                    recorder.calls.append(name)
                    if name in recorder.interrupt:
                        os.kill(os.getpid(), signal.SIGINT)
                    if name in recorder.fail | recorder.fail_undo:
                        raise GuestError(f"{name} broke")
                    if name in recorder.refused:
                        raise never_ran(GuestError(f"{name} refused: the VM is paused"))
                    return None

                return call

        return Layer()


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


def run(plan, runtime, store):
    state = store.load()
    return execute(plan, runtime, Journal(store, state, plan))


def test_success_journals_every_step(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    runtime = Recorder()
    outcome = run(plan, runtime, store)
    assert runtime.calls == [f"{s.layer}.{s.action}" for s in plan.steps]
    record = store.load().shares["testvm:/mnt/x"]
    assert [s.action for s in record.steps] == [s.action for s in plan.steps]
    assert len(outcome.done) == len(plan.steps)


def test_failure_undoes_completed_steps_in_reverse_and_clears_the_journal(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    runtime = Recorder(fail={"guest.fstab_add"})
    with pytest.raises(ApplyFailed) as info:
        run(plan, runtime, store)
    assert runtime.calls == [
        "hypervisor.attach_share",
        "guest.mkdir",
        "guest.mount",
        "guest.fstab_add",
        "guest.fstab_remove",  # the failed step may have half happened: undone too
        "guest.unmount",
        "guest.rmdir_empty",
        "hypervisor.detach_share",
    ]
    assert info.value.exit_code == 3
    assert "fstab" in info.value.message and "undid 4" in info.value.message
    assert "as before" in info.value.message
    assert store.load().shares == {}


def test_ctrl_c_rolls_back_too(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    runtime = Recorder(interrupt={"guest.mount"})
    with pytest.raises(ApplyFailed, match="interrupted"):
        run(plan, runtime, store)
    assert runtime.calls[-2:] == ["guest.rmdir_empty", "hypervisor.detach_share"]
    assert store.load().shares == {}


def test_failed_undo_is_reported_and_kept_in_the_journal(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    runtime = Recorder(fail={"guest.probe"}, fail_undo={"guest.unmount"})
    with pytest.raises(RollbackIncomplete) as info:
        run(plan, runtime, store)
    assert info.value.exit_code == 4
    assert "unmount" in info.value.undo_failures[0]
    record = store.load().shares["testvm:/mnt/x"]
    assert [s.action for s in record.steps if s.undo] == ["mount"]


def test_remove_after_apply_replays_the_undos_and_empties_state(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    run(plan, Recorder(), store)
    record = store.load().shares["testvm:/mnt/x"]
    runtime = Recorder()
    run(removal_plan([record]), runtime, store)
    assert runtime.calls == [
        "guest.fstab_remove",
        "guest.unmount",
        "guest.rmdir_empty",
        "hypervisor.detach_share",
    ]
    assert store.load().shares == {}


def test_interrupted_remove_resumes_where_it_stopped(store):
    plan = plan_for(spec_of("/srv/x testvm:/mnt/x"), fresh_vm())
    run(plan, Recorder(), store)
    record = store.load().shares["testvm:/mnt/x"]
    with pytest.raises(ApplyFailed):
        run(removal_plan([record]), Recorder(fail={"guest.rmdir_empty"}), store)
    left = store.load().shares["testvm:/mnt/x"]
    runtime = Recorder()
    run(removal_plan([left]), runtime, store)
    assert runtime.calls == ["guest.rmdir_empty", "hypervisor.detach_share"]
    assert store.load().shares == {}


def test_journal_refuses_unknown_actions():
    from vmshare.plan.step import Step

    with pytest.raises(ValueError, match="unknown"):
        Step(share="a", layer="guest", action="__class__", vm="v", summary="x")


def test_restart_that_completes_a_9p_removal_is_not_journalled(store):
    spec = spec_of("/srv/x testvm:/mnt/x readonly=true")
    run(plan_for(spec, fresh_vm(), allow_restart=True), Recorder(), store)
    record = store.load().shares["testvm:/mnt/x"]
    runtime = Recorder()
    run(removal_plan([record], allow_restart=True), runtime, store)
    assert runtime.calls[-1] == "hypervisor.restart"
    assert store.load().shares == {}
