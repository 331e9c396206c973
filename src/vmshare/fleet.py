"""Apply one plan to many VMs at once: each VM's part runs in a worker, on its own.

A plan is split into parts by VM (parts that create the same host folder stay one part: the
rollback of one would remove the folder under the other). Up to ``parallel`` parts run at once,
each through the real executor with its own journal, so each part rolls back on its own failure
and a slow or failing VM holds no other back; the results are collected for the end. Journal
writes go through the store's shared writer (the state lock is held per write, never across a
step). Host steps that edit the host's file servers run under a host lock, a VM's consecutive
host steps (an SMB account and the share that uses it) as one, so no other VM's rollback can
take the account away in between. Ctrl-C sets ``stop``: every part stops at its next step
boundary and rolls back what it began; parts not yet started do not start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from vmshare.apply import Journal, Outcome, Progress, Runtime, execute, sigint_handled_by
from vmshare.errors import ApplyFailed, Interrupted, VmshareError
from vmshare.locks import HostLock
from vmshare.plan.model import Plan
from vmshare.plan.step import Step
from vmshare.state import State, StateStore

DEFAULT_PARALLEL = 8


def default_parallel(vms: int) -> int:
    """As many workers as VMs, at most ``DEFAULT_PARALLEL``: the work is waiting on
    hypervisors and guests, not this machine's CPU."""
    return max(1, min(DEFAULT_PARALLEL, vms))


@dataclass
class VmResult:
    vms: list[str]  # usually one; several when their parts share a host folder
    outcome: Outcome | None = None
    error: VmshareError | None = None
    started: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.started

    def as_json(self) -> dict[str, Any]:
        return {
            "vm": ", ".join(self.vms),
            "ok": self.ok,
            "started": self.started,
            "done": [s.summary for s in self.outcome.done] if self.outcome else [],
            "error": self.error.message if self.error else None,
            "exit_code": int(self.error.exit_code) if self.error else 0,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class FleetOutcome:
    results: list[VmResult] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        """Every part's done steps and notes, in plan order of the parts."""
        merged = Outcome()
        for result in self.results:
            if result.outcome is not None:
                merged.done += result.outcome.done
                merged.notes += result.outcome.notes
        return merged


def split(plan: Plan, state: State) -> list[Plan]:
    """The plan's parts, one per VM (VMs whose steps create the same host folder together),
    each with its steps in plan order and the records and removals of its shares."""
    group: dict[str, str] = {}  # VM -> the VM that stands for its group (union-find)

    def find(vm: str) -> str:
        while group.setdefault(vm, vm) != vm:
            vm = group[vm]
        return vm

    folder_of: dict[str, str] = {}
    for step in plan.steps:
        find(step.vm)
        if step.layer == "host" and step.action == "mkdir":
            first = folder_of.setdefault(str(step.args.get("path")), step.vm)
            group[find(step.vm)] = find(first)
    share_vm = {s.share: s.vm for s in plan.steps}
    for key in [*plan.records, *plan.removes]:
        if key not in share_vm:
            record = plan.records.get(key) or state.shares.get(key)
            share_vm[key] = record.vm if record is not None else key.split(":", 1)[0]
            find(share_vm[key])
    parts: dict[str, Plan] = {}
    for vm in group:
        parts.setdefault(find(vm), Plan())
    for step in plan.steps:
        parts[find(step.vm)].steps.append(step)
    for key, record in plan.records.items():
        parts[find(share_vm[key])].records[key] = record
    for key in plan.removes:
        parts[find(share_vm[key])].removes.append(key)
    return list(parts.values())


def vms_of(part: Plan) -> list[str]:
    vms = [s.vm for s in part.steps] + [r.vm for r in part.records.values()]
    vms += [k.split(":", 1)[0] for k in part.removes]
    return list(dict.fromkeys(vms))


class _HostSerialized:
    """A part's runtime: its host steps hold the host lock, a run of consecutive ones as one."""

    def __init__(self, runtime: Runtime, lock: HostLock) -> None:
        self.runtime, self.lock = runtime, lock
        self._held: AbstractContextManager[None] | None = None

    def layer(self, layer: str, vm: str) -> Any:
        if layer == "host" and self._held is None:
            held = self.lock.held()
            held.__enter__()
            self._held = held
        elif layer != "host":
            self.release()
        return self.runtime.layer(layer, vm)

    def release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.__exit__(None, None, None)


def _ctrl_c_sets(stop: threading.Event) -> AbstractContextManager[None]:
    """In the main thread, SIGINT sets ``stop`` for the workers instead of interrupting (in
    another thread the caller sets ``stop`` itself)."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    return sigint_handled_by(handler)


def run_parts(
    parts: list[Plan],
    state: State,
    store: StateStore,
    runtime_for: Callable[[], Runtime],
    *,
    parallel: int,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> FleetOutcome:
    """Run each part through the executor, up to ``parallel`` at once; a part's failure is
    its result, never another part's. ``runtime_for()`` gives each worker thread its runtime
    (hypervisor connections are not shared between threads)."""
    stop = stop or threading.Event()
    host_lock = HostLock(store.directory, store.lock_timeout)
    local = threading.local()
    results = [VmResult(vms_of(part)) for part in parts]
    report_lock = threading.Lock()

    def report(event: str, step: Step) -> None:
        if progress is not None:
            with report_lock:
                progress(event, step)

    def run(index: int) -> None:
        part, result = parts[index], results[index]
        if stop.is_set():
            return
        if not hasattr(local, "runtime"):
            local.runtime = runtime_for()
        runtime = _HostSerialized(local.runtime, host_lock)
        result.started = True
        started = time.monotonic()
        try:
            journal = Journal(store, state, part)
            result.outcome = execute(part, runtime, journal, report, stop)
        except VmshareError as exc:
            result.error = exc
        except Exception as exc:  # a bug in one part: reported with the others, not raised
            result.error = VmshareError(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            runtime.release()
            result.seconds = time.monotonic() - started

    with _ctrl_c_sets(stop), ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(run, index) for index in range(len(parts))]
        while not all(f.done() for f in futures):
            # the main thread waits in short slices so that SIGINT's handler runs promptly
            time.sleep(0.05)
    for future in futures:
        future.result()
    return FleetOutcome(results)


def raise_failures(fleet: FleetOutcome, interrupted: bool) -> None:
    """Raise one error that names every VM that failed (nothing when all succeeded)."""
    failed = [r for r in fleet.results if r.error is not None]
    skipped = [r for r in fleet.results if not r.started]
    if not failed and not (interrupted and skipped):
        return
    from vmshare.errors import FleetFailed, RollbackIncomplete

    done = [r for r in fleet.results if r.ok]
    incomplete = [r for r in failed if isinstance(r.error, RollbackIncomplete)]
    changed = [r for r in fleet.results if r.ok or isinstance(r.error, ApplyFailed)]
    lines = [f"{', '.join(r.vms)}: {r.error.message}" for r in failed if r.error is not None]
    undone = [s for r in failed if isinstance(r.error, ApplyFailed) for s in r.error.undone]
    undo_failures = [
        f for r in failed if isinstance(r.error, ApplyFailed) for f in r.error.undo_failures
    ]
    vms = [r.as_json() for r in fleet.results]
    total = len(fleet.results)
    if interrupted and not changed:
        raise Interrupted("interrupted (Ctrl-C) before any change")
    head = "interrupted (Ctrl-C)" if interrupted else f"{len(failed)} of {total} VM part(s) failed"
    message = f"{head}; {len(done)} done, {len(failed)} failed" + (
        f", {len(skipped)} not started" if skipped else ""
    )
    message += ": " + "; ".join(lines) if lines else ""
    if incomplete:
        kind: type[ApplyFailed] = RollbackIncomplete
        hint = "`vmshare status` shows what is left; `vmshare remove` retries the undo"
    elif done:
        kind = FleetFailed
        hint = "each failed VM was rolled back; fix the cause and run apply again"
    else:
        kind = ApplyFailed
        hint = "fix the cause and run the command again"
    error = kind(message, hint=hint, undone=undone, undo_failures=undo_failures)
    error.vms = vms
    raise error
