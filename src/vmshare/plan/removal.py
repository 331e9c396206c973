"""Plans that undo: a journalled share (remove, prune), a crashed run's unfinished steps, and
objects that carry a share's names although no journal explains them."""

from __future__ import annotations

from vmshare.facts import VmFacts
from vmshare.plan.device import ALL_SCOPES
from vmshare.plan.model import Plan
from vmshare.plan.network import HostServers
from vmshare.plan.step import Layer, Step
from vmshare.protocols import mount_tag, smb
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
    vm_name, _, target = key.partition(":")
    tag = mount_tag(key)

    def step(layer: Layer, action: str, summary: str, **args: object) -> Step:
        return Step(share=key, layer=layer, action=action, vm=vm_name, args=args, summary=summary)

    plan = Plan(removes=[key])
    mounted = vm.guest.mounts.get(target)
    if mounted is not None and tag in mounted.source:
        plan.steps.append(step("guest", "unmount", f"unmount {target}", target=target))
    if tag in vm.guest.fstab_entries:
        plan.steps.append(
            step("guest", "fstab_remove", f"remove {target} from /etc/fstab", entry_id=tag)
        )
    if vm.guest.reachable:
        path = smb.credentials_path(tag)
        plan.steps.append(step("guest", "remove_file", f"remove {path} if present", path=path))
    if tag in vm.persistent_devices or tag in vm.running_devices:
        plan.steps.append(
            step("hypervisor", "detach_share", f"detach device {tag}", tag=tag, scopes=ALL_SCOPES)
        )
    if tag in vm.records:
        where = vm.capabilities.record_where.format(tag=tag)
        summary = f"forget the share's record on VM {vm_name} ({where})"
        plan.steps.append(step("hypervisor", "forget_share", summary, tag=tag))
    if servers is not None:
        nfs_settings = servers.settings.nfs.model_dump(mode="json")
        smb_settings = servers.settings.smb.model_dump(mode="json")
        unexports = {
            "nfs": ("nfs_unexport", "NFS export", {"exporter": servers.nfs.name}, nfs_settings),
            "smb": ("smb_unshare", "Samba share", {}, smb_settings),
        }
        for protocol, (action, what, extra, settings) in unexports.items():
            if tag in exports.get(protocol, {}):
                summary = f"remove the {what} {tag}"
                args = {**extra, "settings": settings, "entry_id": tag}
                plan.steps.append(step("host", action, summary, **args))
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
