"""wait_task against a stand-in task object with pyVmomi's attributes (``info.state``,
``info.progress``, ``info.error``, ``info.result``, ``CancelTask``): the simulator in Debian's
govmomi 0.24 runs every task to its end before answering, so it cannot hold one running; the
same code against the simulator's real tasks is in tests/integration/test_vsphere_tasks.py."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pytest
from pyVmomi import vim

from vmshare.backends.vsphere.backend import wait_task
from vmshare.backends.vsphere.faults import vim_errors
from vmshare.errors import BackendUnavailable, HypervisorError

State = vim.TaskInfo.State


@dataclass
class Info:
    state: Any
    progress: int | None = None
    error: Exception | None = None
    result: Any = None


@dataclass
class FakeTask:
    """Goes through ``steps`` one per read of ``info``, then stays at the last."""

    steps: list[Info]
    reads: int = 0
    cancelled: int = 0

    @property
    def info(self) -> Info:
        step = self.steps[min(self.reads, len(self.steps) - 1)]
        self.reads += 1
        return step

    def CancelTask(self) -> None:
        self.cancelled += 1


def test_progress_is_reported_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    task = FakeTask(
        [
            Info(State.queued),
            Info(State.running, 10),
            Info(State.running, 10),
            Info(State.running, 60),
            Info(State.success, result="done"),
        ]
    )
    seen: list[tuple[str, int | None]] = []
    with caplog.at_level(logging.INFO, logger="vmshare.vsphere"):
        result = wait_task(
            task, "power on VM 'x'", progress=lambda w, p: seen.append((w, p)), poll=0
        )
    assert result == "done"
    assert [p for _, p in seen] == [None, 10, 60, 100]
    assert {w for w, _ in seen} == {"power on VM 'x'"}
    assert task.reads == 5  # task.info read once per poll
    assert "vSphere task to power on VM 'x': 60%" in caplog.text


def test_a_task_that_stays_running_is_cancelled_at_the_deadline() -> None:
    task = FakeTask([Info(State.running, 5)])
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        wait_task(task, "power off VM 'x'", timeout=0.2, poll=0.01)
    assert time.monotonic() - started < 2
    assert task.cancelled == 1
    assert "within 0.2 s (task deadline; the task was cancelled)" in caught.value.message


def test_a_failed_cancel_still_reports_the_deadline() -> None:
    class Stubborn(FakeTask):
        def CancelTask(self) -> None:
            raise vim.fault.InvalidState()

    with pytest.raises(BackendUnavailable, match="task deadline"):
        wait_task(Stubborn([Info(State.queued)]), "x", timeout=0.05, poll=0.01)


def test_a_task_error_is_raised_and_mapped_by_type() -> None:
    fault = vim.fault.InvalidPowerState(requestedState="poweredOn", existingState="poweredOn")
    task = FakeTask([Info(State.running, 1), Info(State.error, error=fault)])
    with pytest.raises(HypervisorError) as caught, vim_errors("https://vc:443"):
        wait_task(task, "power on VM 'x'", poll=0)
    assert "not in the power state this operation needs" in caught.value.message
    assert caught.value.hint is not None and "start the VM" in caught.value.hint
