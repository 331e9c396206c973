"""A running VM stopped around the steps it can take only while off.

Some hypervisor steps can be carried out only while their VM is off (VirtualBox through
VBoxManage: a permanent folder needs the VM's write lock). Each backend says which, for the VM
as it is now (``Backend.needs_off``); ``stop_around`` then brackets each run of such steps with a
graceful stop and a start, or, without ``--restart``, blocks the plan with the reason and what
else would do. The stop's undo starts the VM again and the start's undo stops it, so a rollback
replays the steps between them with the VM off, as they ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vmshare.plan.model import Plan
from vmshare.plan.step import POWER, Step


@dataclass(frozen=True)
class NeedsOff:
    """Why a step can run only while its VM is off, and what else would do without a stop."""

    reason: str
    instead: str = ""


def stop_around(
    plan: Plan, needs_off: Callable[[Step], NeedsOff | None], *, allow_restart: bool
) -> None:
    """Stop a VM before a hypervisor step it must be off for and start it again after the run
    of its hypervisor steps that follows, or, without ``allow_restart``, add the blocker that
    says why and what else would do. A step the plan runs while the VM is off already (after
    its own stop) needs nothing more."""
    steps: list[Step] = []
    off: set[str] = set()  # VMs this plan has stopped, until it starts them
    opened: dict[str, Step] = {}  # VM -> the first step of a run we stopped it for
    blocked: set[str] = set()
    for step in plan.steps:
        for vm in list(opened):  # a run ends at the first step that is not one of its VM's
            if vm != step.vm or step.layer != "hypervisor" or step.action in POWER:
                steps.append(_power(opened.pop(vm), "start", "stop", "it ran before the change"))
                off.discard(vm)
        if step.action in POWER:
            (off.add if step.action == "stop" else off.discard)(step.vm)
        elif step.layer == "hypervisor" and step.vm not in off:
            needed = needs_off(step)
            if needed is not None and allow_restart:
                steps.append(_power(step, "stop", "start", needed.reason))
                opened[step.vm] = step
                off.add(step.vm)
            elif needed is not None and step.vm not in blocked:
                blocked.add(step.vm)
                plan.blockers.append(_blocker(step.vm, needed))
        steps.append(step)
    for step in opened.values():
        steps.append(_power(step, "start", "stop", "it ran before the change"))
    plan.steps = steps


def _power(step: Step, action: str, undo: str, reason: str) -> Step:
    vm = step.vm
    summaries = {
        "stop": f"stop VM {vm} (graceful shutdown, then power off after a deadline)",
        "start": f"start VM {vm} again",
    }
    back = Step(share=step.share, layer="hypervisor", action=undo, vm=vm, summary=summaries[undo])
    return Step(
        share=step.share,
        layer="hypervisor",
        action=action,
        vm=vm,
        summary=summaries[action],
        reason=reason,
        undo=back,
    )


def _blocker(vm: str, needed: NeedsOff) -> str:
    instead = f", {needed.instead}" if needed.instead else ""
    return (
        f"{needed.reason}: pass --restart so vmshare stops VM {vm!r} for it (graceful shutdown) "
        f"and starts it again{instead}"
    )
