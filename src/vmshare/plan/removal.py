"""Plans that undo: a journalled share (remove, prune), a crashed run's unfinished steps, and
objects that carry a share's names although no journal explains them."""

from __future__ import annotations

from vmshare.facts import VmFacts
from vmshare.plan.leftovers import export_leftovers, vm_leftovers
from vmshare.plan.model import Plan
from vmshare.plan.network import HostServers
from vmshare.plan.step import Step
from vmshare.protocols import mount_tag
from vmshare.state import ShareRecord


def removal_steps(record: ShareRecord) -> list[Step]:
    """Undo a journalled share: the undos of its maybe-done and completed steps, newest first."""
    steps = [*record.steps, *record.pending]
    return [step.undo for step in reversed(steps) if step.undo is not None]


def recovery_plan(records: list[ShareRecord]) -> Plan:
    """Undo the steps that a crashed or killed run began but never recorded as complete."""
    plan = Plan()
    for record in records:
        if record.pending:
            plan.steps += [s.undo for s in reversed(record.pending) if s.undo is not None]
            plan.removes.append(record.key)
    return plan


def orphan_plan(
    key: str,
    vm: VmFacts,
    exports: dict[str, dict[str, str]],
    servers: HostServers | None,
) -> Plan:
    """Undo the objects that carry the deterministic names of share ``key`` although no journal
    explains them (a lost state file, another state dir, a crash of an older vmshare)."""
    vm_name = key.partition(":")[0]
    tag = mount_tag(key)

    def wanted(found: str) -> bool:
        return found == tag

    def key_of(_tag: str) -> str:
        return key

    plan = Plan(removes=[key])
    plan.steps = vm_leftovers(vm_name, vm, wanted, key_of, credentials_of=[tag])
    if servers is not None:
        plan.steps += export_leftovers(exports, servers, wanted, key_of, lambda _tag: vm_name)
    if len(plan.steps) == 1 and plan.steps[0].action == "remove_file":
        plan.steps = []  # nothing but the always-planned credentials clean-up: nothing found
    return plan


def dirs_made(record: ShareRecord, layer: str) -> list[str]:
    """The folders a share's journalled mkdir steps created on ``layer``."""
    made: list[str] = []
    for step in record.steps:
        if step.layer == layer and step.action == "mkdir" and step.undo is not None:
            made += [step.args["path"], *step.undo.args.get("parents", [])]
    return made


def removal_plan(records: list[ShareRecord], *, allow_restart: bool = False) -> Plan:
    """Undo exactly what the journal says vmshare did for these shares.

    A device that cannot be hot-unplugged (9p) leaves the running VM only when it restarts:
    with ``allow_restart`` the plan ends with that restart.
    """
    plan = Plan()
    for record in records:
        plan.steps.extend(removal_steps(record))
        plan.removes.append(record.key)
    if allow_restart:
        for record in records:
            if record.detach_restarts:
                plan.steps.append(
                    Step(
                        share=record.key,
                        layer="hypervisor",
                        action="restart",
                        vm=record.vm,
                        summary=f"restart VM {record.vm} if it runs",
                        reason=f"{record.protocol} devices leave a running VM only at a restart",
                    )
                )
                break
    return plan
