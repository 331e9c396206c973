"""The executor: run a Plan's steps in order through a write-ahead journal; undo on failure.

Each step's intent is journalled before it runs and its completion after, so a step that a crash
interrupts stays in the journal as *pending* (maybe done) and is undone, idempotently, by the
next run or by ``remove``. A failure or Ctrl-C during an apply undoes every step this run began,
the interrupted one included, newest first, with Ctrl-C ignored while undoing; a share this run
was replacing is then made again exactly as the journal recorded it, so a failed run leaves the
systems as they were. Ctrl-C is acted on inside a step or between steps, never in the middle of
a journal write. Steps that only unwind a share (remove, prune) are not redone on failure: a
rerun resumes where it stopped. An apply on several VMs in parallel (fleet.py) runs each VM's
part of the plan as such a run of its own; every journal write goes to the shared state file
through the store's writer (statewriter.py), durable before the step it records runs.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from vmshare.errors import (
    ApplyFailed,
    Interrupted,
    PrivilegeRefused,
    RollbackIncomplete,
    ServerNotRunning,
    VmshareError,
)
from vmshare.plan.model import Plan
from vmshare.plan.step import ACTIONS, POWER, Step
from vmshare.state import ShareRecord, State, StateStore

# (event, step): "start", "done", "failed", "undo", "redo" (restoring a replaced share)
Progress = Callable[[str, Step], None]

# Test hook for the crash harness: "POINT:INDEX:SIGNAL" makes the executor send SIGNAL (kill,
# int or stop) to itself at POINT (intent, effect, completed) of the INDEX-th step (0-based).
FAULT_ENV = "VMSHARE_TEST_FAULT"
FAULT_POINTS = ("intent", "effect", "completed")


class Runtime(Protocol):
    def layer(self, layer: str, vm: str) -> Any:
        """The object whose methods are the actions of ``layer`` for ``vm``."""
        ...


@dataclass
class Outcome:
    done: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Journal:
    """Keeps the state file in step with what may have been done, before and after every step."""

    def __init__(self, store: StateStore, state: State, plan: Plan) -> None:
        self.store, self.state, self.plan = store, state, plan
        self.unwinding = set(plan.removes)

    def unwinds(self, step: Step) -> bool:
        """Whether ``step`` undoes a journalled step of a share this plan removes."""
        record = self.state.shares.get(step.share)
        if step.share not in self.unwinding or record is None:
            return False
        return step in _undos(record.pending) or step in _undos(record.steps)

    def unwinds_removal(self, step: Step) -> bool:
        """Whether ``step`` belongs to a share this plan removes for good (not a replacement)."""
        return step.share in self.unwinding and step.share not in self.plan.records

    def intent(self, step: Step) -> None:
        """Record ``step`` as maybe done, before it runs. Unwinding steps need no record: the
        step they undo stays journalled until they complete, and undos are idempotent. Power
        steps (``POWER``) are the run's own: their undo serves only its rollback."""
        if step.undo is None or step.action in POWER or self.unwinds(step):
            return
        record = self._record_for(step)
        if record is not None:
            record.pending.append(step)
            self._save(step.share)

    def completed(self, step: Step) -> bool:
        """Record ``step`` as done; True when it unwound an earlier journalled step."""
        if step.action in POWER:  # not a share's: nothing of it is left for `remove`
            return False
        unwound = self.unwinds(step)
        if unwound:
            earlier = self.state.shares[step.share]
            pending = [s for s in earlier.pending if s.undo == step]
            if pending:
                earlier.pending.remove(pending[0])
            else:
                _pop_until(earlier.steps, step)
            self._drop_if_done(earlier)
        else:
            record = self._record_for(step)
            if record is not None:
                if step in record.pending:
                    record.pending.remove(step)
                record.steps.append(step)
        self._save(step.share)
        return unwound

    def undone(self, step: Step) -> None:
        """``step``'s undo ran during a rollback: forget the step."""
        record = self.state.shares.get(step.share)
        if record is not None:
            for steps in (record.pending, record.steps):
                if step in steps:
                    steps.remove(step)
                    break
            self._drop_if_done(record)
        self._save(step.share)

    def restoring(self, record: ShareRecord) -> None:
        """A replaced share is about to be made again: until it is, every step is maybe done."""
        redo = [step for step in record.steps if step.undo is not None]
        self.state.shares[record.key] = record.model_copy(update={"steps": [], "pending": redo})
        self._save(record.key)

    def restored(self, record: ShareRecord) -> None:
        """A replaced share was made again as ``record`` describes."""
        self.state.shares[record.key] = record.model_copy(update={"pending": []})
        self._save(record.key)

    def finish(self) -> None:
        """Shares this plan touched are forgotten once nothing of them is left to undo, also
        when their record never had an undo step (a record must always have a way back)."""
        for key in {*self.plan.removes, *self.plan.records}:
            record = self.state.shares.get(key)
            if record is not None and not record.undoable:
                del self.state.shares[key]
                self._save(key)

    def _save(self, key: str) -> None:
        """Write this share's record as it is now (or its absence) to the shared state file;
        other shares' records there are left as other runs and parts wrote them."""
        record = self.state.shares.get(key)
        self.store.writer.commit({key: record.model_copy(deep=True) if record else None})

    def _record_for(self, step: Step) -> ShareRecord | None:
        record = self.state.shares.get(step.share)
        if record is None and step.share in self.plan.records:
            record = self.plan.records[step.share].model_copy(deep=True)
            record.steps, record.pending = [], []
            self.state.shares[step.share] = record
        return record

    def _drop_if_done(self, record: ShareRecord) -> None:
        if not record.undoable:
            self.state.shares.pop(record.key, None)


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


class _CtrlC:
    """SIGINT during an apply: raised inside a step (which is then undone as maybe done),
    remembered between steps and acted on at the next step boundary. A VM's part of a fleet
    runs in a worker thread, where no signal arrives: there ``stop`` (set by the main thread's
    handler) is acted on at the next step boundary, after the running step finished."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._pressed = False
        self.in_step = False
        self.stop = stop

    @property
    def pressed(self) -> bool:
        return self._pressed or (self.stop is not None and self.stop.is_set())

    def _handler(self, _signum: int, _frame: FrameType | None) -> None:
        self._pressed = True
        if self.in_step:
            self.in_step = False
            raise KeyboardInterrupt

    def installed(self) -> AbstractContextManager[None]:
        return sigint_handled_by(self._handler)

    @contextmanager
    def step(self) -> Iterator[None]:
        if self.pressed:
            raise KeyboardInterrupt
        self.in_step = True
        try:
            yield
        finally:
            self.in_step = False


@contextmanager
def sigint_handled_by(handler: Callable[[int, FrameType | None], None] | int) -> Iterator[None]:
    """SIGINT goes to ``handler`` (or SIG_IGN) inside the block, as before after it."""
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fault(point: str, index: int) -> None:
    """The crash harness's hook (see FAULT_ENV); does nothing unless the variable is set."""
    wanted = os.environ.get(FAULT_ENV)
    if wanted and wanted.rsplit(":", 1)[0] == f"{point}:{index}":
        # stop: the fault tests pause here, break a service, then resume (tests/testbed/faults.py)
        signals = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}
        os.kill(os.getpid(), signals.get(wanted.rsplit(":", 1)[1], signal.SIGINT))


def execute(
    plan: Plan,
    runtime: Runtime,
    journal: Journal,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> Outcome:
    """Run ``plan``; ``stop`` (a fleet's Ctrl-C, set by another thread) is acted on as Ctrl-C
    is between steps."""
    report = progress or (lambda _event, _step: None)
    outcome = Outcome()
    begun: list[Step] = []  # steps of this run that have an undo and may be rolled back
    ctrl_c = _CtrlC(stop)
    replaced = {
        key: journal.state.shares[key].model_copy(deep=True)
        for key in plan.removes
        if key in plan.records and key in journal.state.shares
    }
    with ctrl_c.installed():
        for index, step in enumerate(plan.steps):
            _fault("intent", index)
            if ctrl_c.pressed:
                break
            report("start", step)
            unwinding = journal.unwinds(step)
            journal.intent(step)
            if step.undo is not None and not unwinding:
                begun.append(step)
            try:
                with ctrl_c.step():
                    note = run_step(runtime, step)
                    _fault("effect", index)
            except (Exception, KeyboardInterrupt) as exc:
                if getattr(exc, "never_ran", False) and begun and begun[-1] is step:
                    begun.pop()  # its action never reached the target: nothing to undo
                    journal.undone(step)
                ctrl = isinstance(exc, KeyboardInterrupt)
                cause = "interrupted (Ctrl-C)" if ctrl else _describe(exc)
                report("failed", step)
                # a refusal's own hint (`vmshare doctor --sudoers`) says what to fix, and a
                # stopped server's how to start it
                fix = exc.hint if isinstance(exc, (PrivilegeRefused, ServerNotRunning)) else None
                raise _rollback(
                    runtime, journal, begun, replaced, outcome, step, cause, report, fix
                ) from None
            journal.completed(step)
            outcome.done.append(step)
            if note:
                outcome.notes.append(note)
            report("done", step)
            _fault("completed", index)
        if ctrl_c.pressed:
            if not outcome.done:
                raise Interrupted("interrupted (Ctrl-C) before any change")
            raise _rollback(
                runtime, journal, begun, replaced, outcome, None, "interrupted (Ctrl-C)", report
            )
    journal.finish()
    return outcome


def _describe(exc: BaseException) -> str:
    return exc.message if isinstance(exc, VmshareError) else f"{type(exc).__name__}: {exc}"


def _rollback(
    runtime: Runtime,
    journal: Journal,
    begun: list[Step],
    replaced: dict[str, ShareRecord],
    outcome: Outcome,
    failed: Step | None,
    cause: str,
    report: Progress,
    fix: str | None = None,
) -> ApplyFailed:
    undone: list[str] = []
    failures: list[str] = []
    # a restart's undo (a restart) comes last: only then has the VM's definition lost the
    # devices it must restart without (a 9p device cannot be hot-unplugged)
    newest_first = sorted(
        reversed(begun), key=lambda s: s.undo is not None and s.undo.action == "restart"
    )
    with sigint_handled_by(signal.SIG_IGN):
        for step in newest_first:
            assert step.undo is not None
            report("undo", step.undo)
            try:
                run_step(runtime, step.undo)
            except Exception as exc:  # keep undoing the rest; report every failure
                failures.append(f"{step.undo.summary}: {_describe(exc)}")
                continue
            journal.undone(step)
            undone.append(step.undo.summary)
        if not failures:
            for record in replaced.values():
                failures += _restore(runtime, journal, record, report)
        journal.finish()
    message = f"{failed.summary} failed: {cause}" if failed else cause
    summary = failed.summary if failed else ""
    if failures:
        return RollbackIncomplete(
            message + f"; {len(failures)} undo step(s) failed too",
            hint="`vmshare status` shows what is left; `vmshare remove` retries the undo",
            failed_step=summary,
            undone=undone,
            undo_failures=failures,
        )
    message += f"; undid {len(undone)} step(s)" if undone else "; nothing to undo"
    if replaced:
        message += f"; {len(replaced)} replaced share(s) restored"
    removing = {s.share for s in outcome.done if journal.unwinds_removal(s)}
    if removing:
        message += "; the removal stopped part-way"
        hint = "run the command again to finish it; `vmshare status` shows what is left"
    else:
        message += "; everything is as before"
        hint = fix or "fix the cause and run the command again"
    return ApplyFailed(message, hint=hint, failed_step=summary, undone=undone)


def _restore(
    runtime: Runtime, journal: Journal, record: ShareRecord, report: Progress
) -> list[str]:
    """Make a replaced share again from its journalled steps (each is idempotent)."""
    journal.restoring(record)
    for step in record.steps:
        if step.undo is None:  # probes, restarts: nothing that needs to exist again
            continue
        report("redo", step)
        try:
            run_step(runtime, step)
        except Exception as exc:
            return [f"restoring {record.label}: {step.summary}: {_describe(exc)}"]
    journal.restored(record)
    return []
