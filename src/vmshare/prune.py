"""``vmshare prune``: take away what carries vmshare's names but belongs to no share this state
records (a lost or deleted state dir, a crash of an older vmshare, a VM's share forgotten).

Where it looks: every VM the state names, the VMs host.toml describes, and those the user names
(``--vm``); and this machine's NFS and Samba configs. What it finds is the leftover finders' of
``vmshare.plan.leftovers`` (the same ones ``remove`` of a share with no record uses), run as one
plan through the executor, like every other change. A VM that cannot be looked into is reported
and does not stop the others.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from vmshare.apply import Journal, Progress, execute
from vmshare.core import (
    Confirm,
    Result,
    Session,
    _confirmed,
    _stop_where_needed,
    _vms_locked,
    host_exports,
    restarted_after_detach,
)
from vmshare.errors import UsageError, VmshareError
from vmshare.facts import VmFacts
from vmshare.plan.leftovers import export_leftovers, guest_targets, is_tag, vm_leftovers
from vmshare.plan.model import Plan
from vmshare.plan.step import Step
from vmshare.plan.windows_host import account_settings
from vmshare.protocols import mount_tag
from vmshare.spec import VmSpec, load_host_settings, vm_settings
from vmshare.state import State, StateStore


@dataclass
class PruneResult:
    result: Result
    looked: list[str] = field(default_factory=list)  # the VMs looked into
    could_not_look: list[str] = field(default_factory=list)  # "WHAT: why", one per place


def vms_to_search(state: State, named: list[str]) -> tuple[dict[str, VmSpec], list[str]]:
    """The VMs prune looks into: the state's (as their shares recorded them), host.toml's, and
    those named (host.toml's settings, else the libvirt defaults); and why host.toml could not
    be read, if it could not."""
    vms: dict[str, VmSpec] = {}
    for record in state.listed():
        vms.setdefault(record.vm, record.vm_spec)
    problems = []
    try:
        known = load_host_settings().vm
    except VmshareError as exc:
        known = {}
        problems.append(f"host.toml: {exc.message}")
    for name, settings in known.items():
        vms.setdefault(name, settings)
    for name in named:
        vms.setdefault(name, known.get(name) or vm_settings(name))
    return vms, problems


def _why_not(facts: VmFacts) -> str | None:
    """Why the VM cannot be looked into now: its guest holds half of what a share leaves."""
    if not facts.exists:
        return "no such VM"
    if not facts.running:
        return "the VM is off (its guest's mounts and fstab cannot be read): start it, prune again"
    if not facts.guest.reachable:
        return f"its guest does not answer ({facts.guest.error or 'no guest channel'})"
    return None


def _key_of(vm: str, targets: dict[str, str]) -> dict[str, str]:
    """The share key of each leftover tag whose guest path is known and gives that tag."""
    keys = {}
    for tag, target in targets.items():
        key = f"{vm}:{target}"
        if mount_tag(key) == tag:
            keys[tag] = key
    return keys


def _restart_for(name: str, facts: VmFacts, steps: list[Step]) -> Step | None:
    """A restart of the VM, when a device the plan detaches leaves it running only then (9p)."""
    for step in steps:
        device = facts.running_devices.get(step.args.get("tag", ""))
        if step.action != "detach_share" or device is None:
            continue
        capability = facts.capabilities.device(device.protocol)
        if capability is not None and not capability.unplug:
            reason = f"{device.protocol} devices leave a running VM only at a restart"
            summary = f"restart VM {name} if it runs"
            return Step(
                share=step.share,
                layer="hypervisor",
                action="restart",
                vm=name,
                summary=summary,
                reason=reason,
            )
    return None


def find_leftovers(
    state: State, session: Session, here: str, *, allow_restart: bool = False
) -> tuple[Plan, list[str], list[str]]:
    """The plan that takes away every leftover; the VMs looked into; what could not be. With
    ``allow_restart`` a VM restarts after a device that leaves it only then is detached."""
    known = {record.tag for record in state.shares.values()}
    plan = Plan()
    looked: list[str] = []
    unlooked: list[str] = []
    keys: dict[str, str] = {}
    windows_shares: set[str] = set()  # a Windows host's shares, reported with each of its VMs
    for name in sorted(session.vms):
        try:
            facts = session.probe_vm(name, [])
        except VmshareError as exc:
            unlooked.append(f"VM {name}: {exc.message}")
            continue
        why = _why_not(facts)
        if why is not None:
            unlooked.append(f"VM {name}: {why}")
            continue
        looked.append(name)
        # a record the VM keeps of a share made on another machine is that machine's to prune
        elsewhere = {t for t, r in facts.records.items() if r.get("host") != here}

        def wanted(tag: str, skip: set[str] = known | elsewhere) -> bool:
            return is_tag(tag) and tag not in skip

        targets = guest_targets(facts, wanted)
        targets.update(
            {t: str(r["target"]) for t, r in facts.records.items() if wanted(t) and "target" in r}
        )
        vm_keys = _key_of(name, targets)
        keys.update(vm_keys)
        windows = facts.capabilities.host_os == "windows"

        def key_of(tag: str, vm: str = name, found: dict[str, str] = vm_keys) -> str:
            return found.get(tag, f"{vm}:{tag}")

        steps = vm_leftovers(
            name,
            facts,
            wanted,
            key_of,
            host_settings=account_settings(session.vms[name]) if windows else None,
        )
        restart = _restart_for(name, facts, steps) if allow_restart else None
        for step in [*steps, *([restart] if restart else [])]:
            if step.layer == "host":  # one Windows host may serve several VMs: once each
                if step.args["entry_id"] in windows_shares:
                    continue
                windows_shares.add(step.args["entry_id"])
            plan.steps.append(step)
    servers, exports, why_not = host_exports(session)
    if servers is None:
        unlooked.append(f"this machine's NFS and Samba configs: {why_not}")
    else:

        def unknown(tag: str) -> bool:
            return is_tag(tag) and tag not in known

        # the step runs on this machine (Session.host of no VM): the export is its servers'
        plan.steps += export_leftovers(
            exports, servers, unknown, lambda tag: keys.get(tag, tag), lambda _tag: ""
        )
    plan.removes = list(dict.fromkeys(step.share for step in plan.steps))
    return plan, looked, unlooked


def prune(
    store: StateStore,
    *,
    vms: list[str] | None = None,
    allow_restart: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    confirm: Confirm | None = None,
) -> PruneResult:
    """Find and (unless ``dry_run``) take away every leftover; shares the state records and
    objects without vmshare's names are never touched."""
    # the VMs it looks into are locked as `apply` and `remove` lock theirs; the state file's own
    # lock is the journal writer's, taken per write (statewriter.py)
    with _vms_locked(store, lambda state: set(vms_to_search(state, vms or [])[0])) as state:
        settings, problems = vms_to_search(state, vms or [])
        session = Session(settings, store)
        try:
            here = socket.gethostname()
            plan, looked, unlooked = find_leftovers(
                state, session, here, allow_restart=allow_restart
            )
            unlooked = problems + unlooked
            _stop_where_needed(plan, session, allow_restart)
            if dry_run or not plan.steps:
                return PruneResult(Result(plan=plan, dry_run=dry_run), looked, unlooked)
            if plan.blockers:
                raise UsageError(
                    plan.blockers[0] + "; nothing was pruned",
                    hint="`vmshare prune --dry-run` shows every step and why",
                )
            _confirmed(plan, confirm, session)
            session.restart_follows.update(restarted_after_detach(plan))
            outcome = execute(plan, session, Journal(store, state, plan), progress)
            return PruneResult(Result(plan=plan, outcome=outcome), looked, unlooked)
        finally:
            session.close()
