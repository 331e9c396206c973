"""The Plan: a pure function of Spec + Facts (+ the State journal) -> ordered Steps.

Each Step carries its undo and, where vmshare chose something, the reason. Re-planning an
applied spec yields no steps. Nothing here touches a system.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from vmshare.devicesteps import DeviceShareSteps
from vmshare.errors import GuestError, NotFoundError, UsageError
from vmshare.facts import Facts, VmFacts
from vmshare.netsteps import USER_NET_WARNING, HostServers, NetworkShareSteps, addresses
from vmshare.protocols import device_protocol, mount_tag, nfs, smb
from vmshare.sharesteps import VmSteps
from vmshare.spec import ShareSpec, Spec, VmSpec
from vmshare.state import ShareRecord, State, now
from vmshare.steps import Step

DEVICE_PROTOCOLS: dict[str, tuple[str, ...]] = {"libvirt": ("virtiofs", "9p")}
NETWORK_PROTOCOLS = ("nfs", "smb")
NATIVE_PROTOCOL: dict[str, str] = {"libvirt": "virtiofs"}


class Choice(BaseModel):
    share: str
    protocol: str
    reason: str
    semantics: str
    warnings: list[str] = []


class Plan(BaseModel):
    steps: list[Step] = []
    choices: list[Choice] = []
    blockers: list[str] = []  # why apply cannot run as asked (each with what to do)
    notes: list[str] = []
    records: dict[str, ShareRecord] = {}  # what the journal records for each new share
    removes: list[str] = []  # share keys whose journal this plan unwinds

    @property
    def empty(self) -> bool:
        return not self.steps


def choose_protocol(share: ShareSpec, backend: str) -> Choice:
    """Pick the share protocol for ``share`` on ``backend`` and say why."""
    devices = DEVICE_PROTOCOLS.get(backend, ())
    offered = (*devices, *NETWORK_PROTOCOLS)
    requested = NATIVE_PROTOCOL.get(backend, "") if share.protocol == "native" else share.protocol
    if requested not in (*offered, "auto"):
        raise UsageError(
            f"backend {backend} cannot share with {share.protocol}",
            hint=f"use one of: auto, {', '.join(offered)}",
        )
    if share.owner is not None and requested not in NETWORK_PROTOCOLS:
        raise UsageError(
            "--owner needs a protocol that maps ownership (nfs, smb); "
            "virtiofs and 9p show the host's own uids and gids",
            hint="add --protocol nfs (or smb), or drop --owner and chown the host directory",
        )
    warnings: list[str] = []
    if requested == "auto":
        if share.readonly and "9p" in devices:
            name = "9p"
            reason = (
                "read-only: QEMU's 9p server refuses writes itself, while virtiofsd 7.2 has no "
                "read-only mode (virtiofs would be read-only only through the guest's mount)"
            )
        else:
            name = devices[0] if devices else "nfs"
            reason = "the fastest device share, well ahead of 9p for metadata"
    else:
        name, reason = requested, "asked for"
    if name in NETWORK_PROTOCOLS:
        semantics = nfs.SEMANTICS if name == "nfs" else smb.SEMANTICS
        if name == "nfs":
            reason += f"; {nfs.NEGOTIATION}"
            warnings.append(nfs.SETUID_WARNING)
        if share.readonly:
            reason += "; read-only is enforced by the server's export"
    else:
        protocol = device_protocol(name)
        semantics = protocol.semantics
        if share.readonly and not protocol.readonly_at_device:
            warnings.append(
                f"read-only is enforced only by the guest's mount ({name} has no read-only mode "
                "here): root in the guest could remount it read-write; use 9p to enforce it"
            )
    return Choice(
        share=share.key, protocol=name, reason=reason, semantics=semantics, warnings=warnings
    )


def drifted(record: ShareRecord, share: ShareSpec) -> bool:
    return record.requested != requested_settings(share)


def requested_settings(share: ShareSpec) -> dict[str, object]:
    return share.model_dump(mode="json", exclude={"name", "create"})


def removal_steps(record: ShareRecord) -> list[Step]:
    """Undo a journalled share: the undos of its completed steps, newest first."""
    return [step.undo for step in reversed(record.steps) if step.undo is not None]


def resolve(
    spec: Spec,
    facts: Facts,
    state: State,
    *,
    origin: str,
    allow_restart: bool = False,
    prune: bool = False,
    servers: HostServers | None = None,
) -> Plan:
    """What must change so that the systems match ``spec``."""
    plan = Plan()
    builders: dict[str, VmSteps] = {}
    for share in spec.share:
        vm_spec = spec.vm_for(share.vm)
        vm = facts.vms[share.vm]
        host = facts.host_paths[str(share.source)]
        if host.exists and not host.is_dir:
            raise UsageError(f"host path {share.source} is not a directory", hint="share a folder")
        if not host.exists and not share.create:
            raise NotFoundError(
                f"host path {share.source} does not exist",
                hint="create it first, or pass --create (create = true in a spec file)",
            )
        if not vm.exists:
            raise NotFoundError(
                f"VM {share.vm!r} not found on {vm.connection}",
                hint=f"check the name with `virsh -c {vm.connection} list --all`",
            )
        choice = choose_protocol(share, vm_spec.backend)
        plan.choices.append(choice)
        out = builders.setdefault(share.vm, VmSteps())
        record = state.shares.get(share.key)
        if record is not None and drifted(record, share):
            plan.steps.extend(removal_steps(record))
            plan.removes.append(record.key)
            plan.notes.append(f"{share.label}: settings changed, so it is removed and made again")
            vm = vm.without_share(record.tag, record.target)
        if vm.running and not vm.guest.reachable:
            raise_guest_unreachable(share.vm, vm)
        if choice.protocol in NETWORK_PROTOCOLS:
            if servers is None:
                raise UsageError("network shares need the host's file server settings")
            where = addresses(vm_spec, vm)
            if where.client == "127.0.0.1":
                choice.warnings.append(USER_NET_WARNING)
            network = NetworkShareSteps(share, vm, facts, servers, where)
            network.host_folder(host.exists, out)
            network.nfs(out) if choice.protocol == "nfs" else network.smb(out)
        else:
            device = DeviceShareSteps(share, vm, device_protocol(choice.protocol))
            device.host_folder(host.exists, out)
            device.hypervisor(out)
            device.guest(out)
        plan.records.setdefault(
            share.key, _record_template(share, vm_spec, vm, choice, origin, state)
        )
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
                plan.notes.append(f"{record.label}: no longer in the spec, so it is removed")
    return plan


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
        hint=(
            "install and start qemu-guest-agent in the guest, or set "
            f'[vm.{vm_name}.guest] channel = "ssh" and ssh_host in the spec'
        ),
    )


def _record_template(
    share: ShareSpec, vm_spec: VmSpec, vm: VmFacts, choice: Choice, origin: str, state: State
) -> ShareRecord:
    existing = state.shares.get(share.key)
    if existing is not None and not drifted(existing, share):
        return existing
    return ShareRecord(
        key=share.key,
        name=share.name,
        vm=share.vm,
        vm_spec=vm_spec.model_copy(update={"connection": vm.connection}),
        source=str(share.source),
        target=share.target,
        protocol=choice.protocol,
        tag=mount_tag(share.key),
        readonly=share.readonly,
        requested=requested_settings(share),
        origin=origin,
        created=now(),
    )


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
            if record.protocol in DEVICE_PROTOCOLS.get(record.vm_spec.backend, ()) and not (
                device_protocol(record.protocol).hotplug
            ):
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


def origin_of(spec_file: Path | None) -> str:
    return str(spec_file.resolve()) if spec_file else "cli"
