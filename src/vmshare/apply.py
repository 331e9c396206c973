"""The executor: run a Plan's steps in order, journal each one, undo in reverse on failure.

A failure or Ctrl-C during an apply undoes every step this run completed, newest first, with
Ctrl-C ignored while undoing. Steps that unwind an earlier share (remove, prune, a changed share)
are journalled as they complete and are not redone on failure: a rerun resumes where it stopped.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from vmshare.errors import ApplyFailed, RollbackIncomplete, VmshareError
from vmshare.plan import Plan
from vmshare.state import State, StateStore
from vmshare.steps import ACTIONS, Step

Progress = Callable[[str, Step], None]  # (event, step): "start", "done", "failed", "undo"


class Runtime(Protocol):
    def layer(self, layer: str, vm: str) -> Any:
        """The object whose methods are the actions of ``layer`` for ``vm``."""
        ...


@dataclass
class Outcome:
    done: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Journal:
    """Keeps the state file in step with what has really been done, after every step."""

    def __init__(self, store: StateStore, state: State, plan: Plan) -> None:
        self.store, self.state, self.plan = store, state, plan
        self.unwinding = set(plan.removes)

    def completed(self, step: Step) -> bool:
        """Record ``step``; True when it unwound an earlier journalled step."""
        record = self.state.shares.get(step.share)
        unwound = (
            step.share in self.unwinding and record is not None and step in _undos(record.steps)
        )
        if unwound:
            assert record is not None
            _pop_until(record.steps, step)
            if not any(s.undo is not None for s in record.steps):
                del self.state.shares[step.share]
        elif record is not None or step.share in self.plan.records:
            if record is None:
                record = self.plan.records[step.share].model_copy(deep=True)
                record.steps = []
                self.state.shares[step.share] = record
            record.steps.append(step)
        # else: a step that only completes a removal (the restart after a 9p detach)
        self.store.save(self.state)
        return unwound

    def undone(self, step: Step) -> None:
        record = self.state.shares.get(step.share)
        if record is not None and step in record.steps:
            record.steps.remove(step)
            if not any(s.undo is not None for s in record.steps):
                del self.state.shares[step.share]
        self.store.save(self.state)


def _undos(steps: list[Step]) -> list[Step]:
    return [s.undo for s in steps if s.undo is not None]


def _pop_until(steps: list[Step], undo: Step) -> None:
    """Drop journalled steps from the newest back to the one that ``undo`` undoes."""
    while steps:
        last = steps.pop()
        if last.undo == undo:
            return


def run_step(runtime: Runtime, step: Step) -> str | None:
    if step.action not in ACTIONS[step.layer]:  # the journal is data: never call anything else
        raise VmshareError(f"unknown action {step.layer}.{step.action} in plan or state")
    target = runtime.layer(step.layer, step.vm)
    args = dict(step.args)
    if step.layer == "hypervisor":
        args["vm"] = step.vm
    note = getattr(target, step.action)(**args)
    return note if isinstance(note, str) else None


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def execute(
    plan: Plan, runtime: Runtime, journal: Journal, progress: Progress | None = None
) -> Outcome:
    report = progress or (lambda _event, _step: None)
    outcome = Outcome()
    applied: list[Step] = []  # steps of this run that have an undo and may be rolled back
    for step in plan.steps:
        report("start", step)
        try:
            note = run_step(runtime, step)
        except (Exception, KeyboardInterrupt) as exc:
            cause = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else _describe(exc)
            report("failed", step)
            raise _rollback(runtime, journal, applied, step, cause, report) from None
        unwound = journal.completed(step)
        outcome.done.append(step)
        if note:
            outcome.notes.append(note)
        if not unwound and step.undo is not None:
            applied.append(step)
        report("done", step)
    return outcome


def _describe(exc: BaseException) -> str:
    return exc.message if isinstance(exc, VmshareError) else f"{type(exc).__name__}: {exc}"


def _rollback(
    runtime: Runtime,
    journal: Journal,
    applied: list[Step],
    failed: Step,
    cause: str,
    report: Progress,
) -> ApplyFailed:
    undone: list[str] = []
    failures: list[str] = []
    with _sigint_ignored():
        for step in reversed(applied):
            assert step.undo is not None
            report("undo", step.undo)
            try:
                run_step(runtime, step.undo)
            except Exception as exc:  # keep undoing the rest; report every failure
                failures.append(f"{step.undo.summary}: {_describe(exc)}")
                continue
            journal.undone(step)
            undone.append(step.undo.summary)
    message = f"{failed.summary} failed: {cause}"
    if failures:
        return RollbackIncomplete(
            message + f"; {len(failures)} undo step(s) failed too",
            hint="`vmshare status` shows what is left; `vmshare remove` retries the undo",
            failed_step=failed.summary,
            undone=undone,
            undo_failures=failures,
        )
    return ApplyFailed(
        message + (f"; undid {len(undone)} completed step(s)" if undone else "; nothing to undo"),
        hint="fix the cause and run the command again",
        failed_step=failed.summary,
        undone=undone,
    )
