"""The Plan: a pure function of Spec + Facts (+ the State journal) -> ordered Steps.

Each Step carries its undo and, where vmshare chose something, the reason. Re-planning an
applied spec yields no steps. Nothing here touches a system.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vmshare.errors import NotFoundError, UsageError
from vmshare.facts import Facts, FsDevice, VmFacts
from vmshare.protocols import DeviceProtocol, device_protocol, mount_tag
from vmshare.spec import ShareSpec, Spec, VmSpec
from vmshare.state import ShareRecord, State, now
from vmshare.steps import Step

DEVICE_PROTOCOLS: dict[str, tuple[str, ...]] = {"libvirt": ("virtiofs", "9p")}
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

    def layers(self) -> dict[str, list[Step]]:
        grouped: dict[str, list[Step]] = {"host": [], "hypervisor": [], "guest": []}
        for step in self.steps:
            grouped[step.layer].append(step)
        return grouped


def choose_protocol(share: ShareSpec, backend: str) -> tuple[DeviceProtocol, Choice]:
    """Pick the share protocol for ``share`` on ``backend`` and say why."""
    offered = DEVICE_PROTOCOLS.get(backend, ())
    requested = (
        NATIVE_PROTOCOL.get(backend, share.protocol)
        if share.protocol == "native"
        else share.protocol
    )
    if requested in ("nfs", "smb"):
        raise UsageError(
            f"protocol {requested} is not available in this version yet",
            hint=f"use --protocol {' or '.join(offered) or 'auto'}",
        )
    if share.owner is not None:
        raise UsageError(
            "--owner needs a protocol that maps ownership (nfs, smb); "
            "virtiofs and 9p show the host's own uids and gids",
            hint="drop --owner, or chown the host directory",
        )
    if requested == "auto":
        if not offered:
            raise UsageError(f"backend {backend} has no device protocol", hint="choose --protocol")
        if share.readonly and "9p" in offered:
            name = "9p"
            reason = (
                "read-only: QEMU's 9p server refuses writes itself, while virtiofsd 7.2 has no "
                "read-only mode (virtiofs would be read-only only through the guest's mount)"
            )
        else:
            name = offered[0]
            reason = "the fastest device share (about 10x 9p for metadata)"
    elif requested in offered:
        name, reason = requested, "asked for"
    else:
        raise UsageError(
            f"backend {backend} cannot share with {requested}",
            hint=f"use one of: auto, {', '.join(offered)}",
        )
    protocol = device_protocol(name)
    warnings = []
    if share.readonly and not protocol.readonly_at_device:
        warnings.append(
            f"read-only is enforced only by the guest's mount ({name} has no read-only mode "
            "here): root in the guest could remount it read-write; use 9p to enforce it"
        )
    choice = Choice(
        share=share.key,
        protocol=name,
        reason=reason,
        semantics=protocol.semantics,
        warnings=warnings,
    )
    return protocol, choice


def drifted(record: ShareRecord, share: ShareSpec) -> bool:
    return record.requested != requested_settings(share)


def requested_settings(share: ShareSpec) -> dict[str, object]:
    return share.model_dump(mode="json", exclude={"name", "create"})


def removal_steps(record: ShareRecord) -> list[Step]:
    """Undo a journalled share: the undos of its completed steps, newest first."""
    return [step.undo for step in reversed(record.steps) if step.undo is not None]


class _Builder:
    """Collects the steps of one VM in layer order: host, hypervisor, restart, guest."""

    def __init__(self) -> None:
        self.host: list[Step] = []
        self.hypervisor: list[Step] = []
        self.guest: list[Step] = []
        self.restart_reasons: list[str] = []

    def steps(self) -> list[Step]:
        return self.host + self.hypervisor + self.guest


def _share_steps(
    share: ShareSpec, vm: VmFacts, protocol: DeviceProtocol, source_exists: bool, out: _Builder
) -> None:
    key, tag, source = share.key, mount_tag(share.key), str(share.source)

    def step(
        layer: Literal["host", "hypervisor", "guest"],
        action: str,
        summary: str,
        undo: Step | None = None,
        reason: str | None = None,
        **kw: object,
    ) -> Step:
        return Step(
            share=key,
            layer=layer,
            action=action,
            vm=share.vm,
            args=dict(kw),
            summary=summary,
            reason=reason,
            undo=undo,
        )

    if not source_exists:
        out.host.append(
            step(
                "host",
                "mkdir",
                f"create host folder {source}",
                path=source,
                undo=step(
                    "host", "rmdir_empty", f"remove host folder {source} if empty", path=source
                ),
            )
        )

    # hypervisor layer
    device = FsDevice(tag=tag, source=source, driver=protocol.name, readonly=share.readonly)  # type: ignore[arg-type]
    for existing in (vm.config_devices.get(tag), vm.live_devices.get(tag)):
        if existing is not None and existing != device:
            raise UsageError(
                f"VM {share.vm!r} already has device {tag} for {share.target} with other settings "
                f"({existing.driver} from {existing.source})",
                hint=f"run `vmshare remove {key}` first",
            )
    if protocol.needs_shared_memory and not vm.shared_memory_config:
        out.hypervisor.append(
            step(
                "hypervisor",
                "add_shared_memory",
                "add shared memory backing to the VM config",
                reason="virtiofs needs the guest's memory shared with virtiofsd",
            )
        )
    if vm.running and protocol.needs_shared_memory and not vm.shared_memory_live:
        out.restart_reasons.append("shared memory backing takes effect only when QEMU restarts")
    need_config = tag not in vm.config_devices
    need_live = vm.running and tag not in vm.live_devices
    hotplug = (
        protocol.hotplug and vm.acpi and (vm.shared_memory_live or not protocol.needs_shared_memory)
    )
    if need_live and not hotplug:
        if not protocol.hotplug:
            why = f"{protocol.name} devices cannot be hot-plugged"
        elif not vm.acpi:
            why = "the VM has no ACPI, so PCI hot-plug is off"
        else:
            why = "virtiofs needs shared memory in the running VM"
        out.restart_reasons.append(why)
    live_now = need_live and hotplug
    if need_config or live_now:
        where = " and ".join(
            w for w, on in (("running VM", live_now), ("config", need_config)) if on
        )
        out.hypervisor.append(
            step(
                "hypervisor",
                "attach_filesystem",
                f"attach {protocol.name} device {tag} for {source} ({where})",
                tag=tag,
                source=source,
                driver=protocol.name,
                readonly=share.readonly,
                live=live_now,
                config=need_config,
                undo=step(
                    "hypervisor",
                    "detach_filesystem",
                    f"detach device {tag}",
                    tag=tag,
                    live=True,
                    config=True,
                ),
            )
        )

    # guest layer
    options = protocol.mount_options(readonly=share.readonly, extra=share.mount_options)
    mounted = vm.guest.mounts.get(share.target)
    guest_steps: list[Step] = []
    if mounted is not None and (mounted.source != tag or mounted.fstype != protocol.fstype):
        raise UsageError(
            f"{share.target} in VM {share.vm!r} is already a mount point "
            f"({mounted.fstype} from {mounted.source})",
            hint="choose another guest path, or unmount it in the guest",
        )
    if mounted is None:
        if share.target not in vm.guest.existing_dirs:
            guest_steps.append(
                step(
                    "guest",
                    "mkdir",
                    f"create mount point {share.target}",
                    path=share.target,
                    undo=step(
                        "guest",
                        "rmdir_empty",
                        f"remove mount point {share.target} if empty",
                        path=share.target,
                    ),
                )
            )
        guest_steps.append(
            step(
                "guest",
                "mount",
                f"mount {tag} on {share.target} ({','.join(options)})",
                source=tag,
                target=share.target,
                fstype=protocol.fstype,
                options=options,
                undo=step("guest", "unmount", f"unmount {share.target}", target=share.target),
            )
        )
    if share.persist and tag not in vm.guest.fstab_entries:
        guest_steps.append(
            step(
                "guest",
                "fstab_add",
                f"persist {share.target} in /etc/fstab (nofail)",
                entry_id=tag,
                source=tag,
                target=share.target,
                fstype=protocol.fstype,
                options=[*options, "nofail"],
                undo=step(
                    "guest", "fstab_remove", f"remove {share.target} from /etc/fstab", entry_id=tag
                ),
            )
        )
    if guest_steps or out.hypervisor:
        what = "write/read" if not share.readonly else "read"
        guest_steps.append(
            step(
                "guest",
                "probe",
                f"{what} probe of {share.target}",
                target=share.target,
                writable=not share.readonly,
            )
        )
    out.guest.extend(guest_steps)


def resolve(
    spec: Spec,
    facts: Facts,
    state: State,
    *,
    origin: str,
    allow_restart: bool = False,
    prune: bool = False,
) -> Plan:
    """What must change so that the systems match ``spec``."""
    plan = Plan()
    builders: dict[str, _Builder] = {}
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
        protocol, choice = choose_protocol(share, vm_spec.backend)
        plan.choices.append(choice)
        out = builders.setdefault(share.vm, _Builder())
        record = state.shares.get(share.key)
        if record is not None and drifted(record, share):
            plan.steps.extend(removal_steps(record))
            plan.removes.append(record.key)
            plan.notes.append(f"{share.label}: settings changed, so it is removed and made again")
            vm = vm.without_share(record.tag, record.target)
            record = None
        if vm.running and not vm.guest.reachable:
            raise_guest_unreachable(share.vm, vm)
        _share_steps(share, vm, protocol, host.exists, out)
        plan.records.setdefault(
            share.key, _record_template(share, vm_spec, vm, choice, origin, state)
        )
    for vm_name, out in builders.items():
        vm = facts.vms[vm_name]
        plan.steps.extend(out.host + out.hypervisor)
        first = next((s for s in out.steps()), None)
        if first is not None and not vm.running:
            if allow_restart:
                plan.steps.append(
                    Step(
                        share=first.share,
                        layer="hypervisor",
                        action="start",
                        vm=vm_name,
                        summary=f"start VM {vm_name}",
                        reason="the guest mount needs it running",
                    )
                )
            else:
                plan.blockers.append(
                    f"VM {vm_name!r} is not running and the share is mounted inside the guest: "
                    "start it, or pass --restart to let vmshare start it"
                )
        elif first is not None and out.restart_reasons:
            reasons = "; ".join(dict.fromkeys(out.restart_reasons))
            if allow_restart:
                plan.steps.append(
                    Step(
                        share=first.share,
                        layer="hypervisor",
                        action="restart",
                        vm=vm_name,
                        summary=f"restart VM {vm_name} (graceful shutdown, then start)",
                        reason=reasons,
                    )
                )
            else:
                plan.blockers.append(
                    f"VM {vm_name!r} must restart: {reasons}; pass --restart to let vmshare do it "
                    "(graceful shutdown first), or use a protocol that needs no restart"
                )
        plan.steps.extend(out.guest)
    if prune:
        listed = {share.key for share in spec.share}
        for record in state.shares.values():
            if record.origin == origin and record.key not in listed:
                plan.steps.extend(removal_steps(record))
                plan.removes.append(record.key)
                plan.notes.append(f"{record.label}: no longer in the spec, so it is removed")
    return plan


def raise_guest_unreachable(vm_name: str, vm: VmFacts) -> None:
    from vmshare.errors import GuestError

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
            if not device_protocol(record.protocol).hotplug:
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
