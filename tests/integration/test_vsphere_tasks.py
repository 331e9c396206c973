"""vSphere tasks through the backend against the simulator's real tasks (no guest needed).

Debian's govmomi 0.24 simulator finishes a power task before it answers the call, so a task
that stays running (the deadline and its cancel) is tested with a stand-in task object in
tests/unit/test_vsphere_task_wait.py; here: real task errors, results and progress."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.testbed.vcsim import Vcsim

from vmshare.backends.vsphere.backend import VsphereBackend, wait_task
from vmshare.backends.vsphere.lookup import vm_index, vm_properties
from vmshare.backends.vsphere.settings import VsphereVm
from vmshare.errors import HypervisorError

pytestmark = pytest.mark.integration
PASSWORD_ENV = "VMSHARE_IT_TASKS_PASSWORD"


@pytest.fixture(scope="module")
def sim() -> Iterator[Vcsim]:
    with Vcsim(vms=3) as sim:
        yield sim


@pytest.fixture
def vs(sim: Vcsim, monkeypatch: pytest.MonkeyPatch) -> Iterator[VsphereBackend]:
    monkeypatch.setenv(PASSWORD_ENV, sim.password)
    backend = VsphereBackend(
        VsphereVm(
            name="tasks",
            server=f"{sim.host}:{sim.port}",
            user=sim.username,
            password_env=PASSWORD_ENV,
            ca_file=str(sim.ca_file),
        )
    )
    yield backend
    backend.close()


def test_a_task_error_becomes_a_mapped_error(vs: VsphereBackend, sim: Vcsim) -> None:
    vm = vs._vm(sim.vm).obj
    assert vm_properties(vs.content, vm)["runtime.powerState"] == "poweredOn"
    with pytest.raises(HypervisorError) as caught, vs.sdk_errors():
        wait_task(vm.PowerOnVM_Task(), f"power on VM {sim.vm!r}")
    assert caught.value.message.startswith(
        "the VM is not in the power state this operation needs (https://127.0.0.1:"
    )
    assert caught.value.hint == "start the VM (or pass --restart to let vmshare start it)"


def test_power_tasks_finish_with_progress(vs: VsphereBackend, sim: Vcsim) -> None:
    other = next(ref for ref in vm_index(vs.content, vs._root()[0]) if ref.name != sim.vm)
    seen: list[tuple[str, int | None]] = []
    with vs.sdk_errors():
        if vm_properties(vs.content, other.obj)["runtime.powerState"] == "poweredOn":
            wait_task(other.obj.PowerOffVM_Task(), "power off", progress=lambda *a: seen.append(a))
        assert vm_properties(vs.content, other.obj)["runtime.powerState"] == "poweredOff"
        assert seen[-1:] in ([], [("power off", 100)])
        seen.clear()
        wait_task(other.obj.PowerOnVM_Task(), "power on", progress=lambda *a: seen.append(a))
    assert seen == [("power on", 100)]  # done before the first poll: one final report
    assert vm_properties(vs.content, other.obj)["runtime.powerState"] == "poweredOn"


def test_a_failed_reconfigure_task_is_mapped_and_writes_no_record(
    vs: VsphereBackend, sim: Vcsim
) -> None:
    """The launcher's task fault (a full datastore): the task vmshare waits on ends in error."""
    sim.fail_next_task("ReconfigVM_Task", "Unable to write VMX file: No space left on device")
    with pytest.raises(HypervisorError) as caught, vs.sdk_errors():
        vs.record_share(vm=sim.vm, tag="failed-task", record={"key": "x"})
    assert caught.value.message == (
        f"vSphere could not change the VM's configuration (https://127.0.0.1:{sim.port}: "
        "Unable to write VMX file: No space left on device)"
    )
    with vs.sdk_errors():
        assert "failed-task" not in vs.inspect(sim.vm).records
        vs.record_share(vm=sim.vm, tag="failed-task", record={"key": "x"})  # disarmed: one call
        assert vs.inspect(sim.vm).records["failed-task"] == {"key": "x"}
        vs.forget_share(vm=sim.vm, tag="failed-task")
