"""resolve(spec, facts, state) -> the Plan that makes the systems match the spec.

Each Step carries its undo and, where vmshare chose something, the reason. Re-planning an
applied spec yields no steps.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from vmshare.errors import GuestError, NotFoundError, UsageError
from vmshare.facts import Facts, VmFacts
from vmshare.plan.choice import NETWORK_PROTOCOLS, choose_protocol
from vmshare.plan.device import DeviceShareSteps
from vmshare.plan.model import Choice, Plan
from vmshare.plan.network import HostServers, NetworkShareSteps, addresses, nat_warning
from vmshare.plan.removal import dirs_made, removal_steps
from vmshare.plan.share import StepMaker, VmSteps
from vmshare.plan.step import Step
from vmshare.plan.windows_host import SEMANTICS as WINDOWS_SEMANTICS
from vmshare.plan.windows_host import WindowsHostShareSteps
from vmshare.plan.windows_host import addresses as windows_addresses
from vmshare.protocols import device_protocol, mount_tag
from vmshare.spec import ShareSpec, Spec, VmSpec
from vmshare.state import ShareRecord, State, now


def drifted(record: ShareRecord, share: ShareSpec) -> bool:
    return record.requested != requested_settings(share)


def requested_settings(share: ShareSpec) -> dict[str, object]:
    return share.model_dump(mode="json", exclude={"name", "create"})


def _inside(path: str, other: str) -> bool:
    return PurePosixPath(path).is_relative_to(other)


def check_overlaps(spec: Spec, state: State, *, origin: str, prune: bool) -> None:
    """Refuse a share nested in another share of the same VM, or containing one, and the same
    host folder shared twice into one VM, counting the shares vmshare will keep."""
    listed = {share.key for share in spec.share}
    kept = [
        (r.key, r.vm, r.target, r.source)
        for r in state.shares.values()
        if r.key not in listed and not (prune and r.origin == origin)
    ]
    new = [(s.key, s.vm, s.target, str(s.source)) for s in spec.share]
    for index, (key, vm, target, source) in enumerate(new):
        for other_key, other_vm, other_target, other_source in new[index + 1 :] + kept:
            if vm != other_vm:
                continue
            if _inside(target, other_target) or _inside(other_target, target):
                raise UsageError(
                    f"{key} and {other_key} nest inside each other: a mount over or under "
                    "another share hides files or blocks its removal",
                    hint="choose guest paths side by side (e.g. /mnt/a and /mnt/b)",
                )
            if source == other_source:
                raise UsageError(
                    f"{source} is already shared into VM {vm!r} as {other_key}",
                    hint=f"use that share, or remove it first: vmshare remove {other_key}",
                )


def resolve(
    spec: Spec,
    facts: Facts,
    state: State,
    *,
    origin: str,
    allow_restart: bool = False,
    prune: bool = False,
    replace: bool = False,
    servers: HostServers | None = None,
) -> Plan:
    """What must change so that the systems match ``spec``.

    A share vmshare made with other settings is replaced only with ``replace``; objects carrying
    a share's deterministic names that its journal does not explain are taken into the journal
    again (every action is idempotent), so ``remove`` can always clean them.
    """
    plan = Plan()
    builders: dict[str, VmSteps] = {}
    check_overlaps(spec, state, origin=origin, prune=prune)
    for share in spec.share:
        vm_spec = spec.vm_for(share.vm)
        vm = facts.vms[share.vm]
        # the VM first: its backend says which host holds the folder (a Windows host's C:\\...
        # looked for on this machine, for a VM that is not there, says nothing)
        if not vm.exists:
            raise NotFoundError(
                f"VM {share.vm!r} not found on {vm.connection}",
                hint=vm.find_hint,
            )
        host = facts.host_paths[str(share.source)]
        if host.exists and not host.is_dir:
            raise UsageError(f"host path {share.source} is not a directory", hint="share a folder")
        if not host.exists and not share.create:
            raise NotFoundError(
                f"host path {share.source} does not exist",
                hint="create it first, or pass --create (create = true in a spec file)",
            )
        choice = choose_protocol(share, vm)
        plan.choices.append(choice)
        plan.notes.extend(w for w in vm.warnings if w not in plan.notes)
        out = builders.setdefault(share.vm, VmSteps())
        record = state.shares.get(share.key)
        explained: frozenset[str] = frozenset()
        if record is not None and drifted(record, share):
            if not replace:
                raise UsageError(
                    f"{share.key} is already shared (from {record.source}, "
                    f"{record.protocol}) with other settings",
                    hint="pass --replace to replace it (the old share comes back if the new one "
                    f"fails), or remove it first: vmshare remove {share.key}",
                )
            plan.steps.extend(removal_steps(record))
            plan.removes.append(record.key)
            plan.notes.append(
                f"{share.label}: settings changed, so it would be replaced (removed, then made "
                "again; if the new share fails, the old one is restored)"
            )
            vm = vm.without_share(record.tag, record.target, dirs_made(record, "guest"))
        elif record is not None:
            explained = frozenset(step.action for step in record.steps)
        if vm.running and not vm.guest.reachable:
            raise_guest_unreachable(share.vm, vm)
        template = plan.records.setdefault(
            share.key, _record_template(share, vm_spec, vm, choice, origin, state)
        )
        maker: StepMaker
        if choice.protocol == "smb" and vm.capabilities.host_os == "windows":
            choice.semantics = WINDOWS_SEMANTICS  # a Windows server's, not Samba's
            where = windows_addresses(vm_spec, vm)
            windows = WindowsHostShareSteps(share, vm_spec, vm, where, explained)
            windows.host_folder(host, out)
            windows.smb(out)
            maker = windows
        elif choice.protocol in NETWORK_PROTOCOLS:
            if servers is None:
                raise UsageError("network shares need the host's file server settings")
            where = addresses(vm_spec, vm)
            if where.client.startswith("127."):
                nat = vm.capabilities.nat
                what = nat.what if nat is not None else "a loopback client address"
                choice.warnings.append(nat_warning(what, where.client))
            network = NetworkShareSteps(share, vm, facts, servers, where, explained)
            network.host_folder(host, out)
            network.nfs(out) if choice.protocol == "nfs" else network.smb(out)
            maker = network
        else:
            capability = vm.capabilities.device(choice.protocol)
            assert capability is not None  # choose_protocol picks from the capabilities
            protocol = device_protocol(choice.protocol)
            device = DeviceShareSteps(share, vm, protocol, capability, explained)
            device.host_folder(host, out)
            device.hypervisor(out)
            device.guest(out)
            maker = device
        maker.record_on_vm(choice.protocol, facts.host_name, template.created, out)
    for vm_name, out in builders.items():
        plan.steps.extend(out.host + out.hypervisor)
        power = _power_change(vm_name, facts.vms[vm_name], out)
        if power is not None:
            action, summary, reason, blocker = power
            if allow_restart:
                first = out.steps()[0].share
                plan.steps.append(
                    Step(
                        share=first,
                        layer="hypervisor",
                        action=action,
                        vm=vm_name,
                        summary=summary,
                        reason=reason,
                        undo=_restart_again(first, vm_name) if action == "restart" else None,
                    )
                )
            else:
                plan.blockers.append(blocker)
        plan.steps.extend(out.guest)
    if prune:
        listed = {share.key for share in spec.share}
        for record in state.shares.values():
            if record.origin == origin and record.key not in listed:
                plan.steps.extend(removal_steps(record))
                plan.removes.append(record.key)
                plan.notes.append(f"{record.label}: no longer in the spec, so it would be removed")
    return plan


def _restart_again(share: str, vm_name: str) -> Step:
    """The restart's undo: a device that cannot be unplugged (9p) leaves the running VM only at
    a restart, so a rollback restarts the VM once more after the rest is undone (apply.py)."""
    return Step(
        share=share,
        layer="hypervisor",
        action="restart",
        vm=vm_name,
        summary=f"restart VM {vm_name} again, without what was undone",
        reason="a device that cannot be hot-unplugged leaves the running VM only at a restart",
    )


def _power_change(vm_name: str, vm: VmFacts, out: VmSteps) -> tuple[str, str, str, str] | None:
    """(action, summary, reason, blocker) when the VM must start or restart for its steps."""
    if not out.steps():
        return None
    if not vm.running:
        reason = "the share is mounted inside the guest, which needs the VM running"
        blocker = (
            f"VM {vm_name!r} is not running: start it, or pass --restart to let vmshare start it"
        )
        return "start", f"start VM {vm_name}", reason, blocker
    if out.restart_reasons:
        reason = "; ".join(dict.fromkeys(out.restart_reasons))
        blocker = (
            f"VM {vm_name!r} must restart: {reason}; pass --restart to let vmshare do it "
            "(graceful shutdown first), or use a protocol that needs no restart"
        )
        return "restart", f"restart VM {vm_name} (graceful shutdown, then start)", reason, blocker
    return None


def raise_guest_unreachable(vm_name: str, vm: VmFacts) -> None:
    raise GuestError(
        f"cannot reach inside VM {vm_name!r}: {vm.guest.error or 'no guest channel answered'}",
        hint=vm.guest.hint or vm.guest_hint,
    )


def _record_template(
    share: ShareSpec, vm_spec: VmSpec, vm: VmFacts, choice: Choice, origin: str, state: State
) -> ShareRecord:
    existing = state.shares.get(share.key)
    if existing is not None and not drifted(existing, share):
        return existing
    device = vm.capabilities.device(choice.protocol)
    return ShareRecord(
        key=share.key,
        name=share.name,
        vm=share.vm,
        vm_spec=vm_spec,  # as used: its connection is resolved (libvirt: the default URI)
        source=str(share.source),
        target=share.target,
        protocol=choice.protocol,
        tag=mount_tag(share.key),
        readonly=share.readonly,
        detach_restarts=device is not None and not device.unplug,
        requested=requested_settings(share),
        origin=origin,
        created=now(),
    )


def origin_of(spec_file: Path | None) -> str:
    return str(spec_file.resolve()) if spec_file else "cli"
