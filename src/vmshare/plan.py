"""The Plan: a pure function of Spec + Facts (+ the State journal) -> ordered Steps.

Each Step carries its undo and, where vmshare chose something, the reason. Re-planning an
applied spec yields no steps. Nothing here touches a system.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vmshare.errors import GuestError, NotFoundError, UsageError
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


class _ShareSteps:
    """The steps one share needs on one VM, given what already exists, layer by layer."""

    def __init__(self, share: ShareSpec, vm: VmFacts, protocol: DeviceProtocol) -> None:
        self.share, self.vm, self.protocol = share, vm, protocol
        self.tag = mount_tag(share.key)
        self.source = str(share.source)

    def step(
        self,
        layer: Literal["host", "hypervisor", "guest"],
        action: str,
        summary: str,
        undo: Step | None = None,
        reason: str | None = None,
        **args: object,
    ) -> Step:
        return Step(
            share=self.share.key,
            layer=layer,
            action=action,
            vm=self.share.vm,
            args=args,
            summary=summary,
            reason=reason,
            undo=undo,
        )

    def host(self, source_exists: bool, out: _Builder) -> None:
        if not source_exists:
            path = self.source
            undo = self.step(
                "host", "rmdir_empty", f"remove host folder {path} if empty", path=path
            )
            out.host.append(
                self.step("host", "mkdir", f"create host folder {path}", undo, path=path)
            )

    def hypervisor(self, out: _Builder) -> None:
        vm, protocol, tag = self.vm, self.protocol, self.tag
        device = FsDevice(
            tag=tag, source=self.source, driver=protocol.name, readonly=self.share.readonly
        )
        for existing in (vm.config_devices.get(tag), vm.live_devices.get(tag)):
            if existing is not None and existing != device:
                raise UsageError(
                    f"VM {self.share.vm!r} already has device {tag} for {self.share.target} with "
                    f"other settings ({existing.driver} from {existing.source})",
                    hint=f"run `vmshare remove {self.share.key}` first",
                )
        if protocol.needs_shared_memory and not vm.shared_memory_config:
            out.hypervisor.append(
                self.step(
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
            protocol.hotplug
            and vm.acpi
            and (vm.shared_memory_live or not protocol.needs_shared_memory)
        )
        if need_live and not hotplug:
            if not protocol.hotplug:
                out.restart_reasons.append(f"{protocol.name} devices cannot be hot-plugged")
            elif not vm.acpi:
                out.restart_reasons.append("the VM has no ACPI, so PCI hot-plug is off")
        live_now = need_live and hotplug
        if need_config or live_now:
            where = " and ".join(
                w for w, on in (("running VM", live_now), ("config", need_config)) if on
            )
            undo = self.step(
                "hypervisor",
                "detach_filesystem",
                f"detach device {tag}",
                tag=tag,
                live=True,
                config=True,
            )
            out.hypervisor.append(
                self.step(
                    "hypervisor",
                    "attach_filesystem",
                    f"attach {protocol.name} device {tag} for {self.source} ({where})",
                    undo,
                    tag=tag,
                    source=self.source,
                    driver=protocol.name,
                    readonly=self.share.readonly,
                    live=live_now,
                    config=need_config,
                )
            )

    def guest(self, out: _Builder) -> None:
        share, tag, fstype = self.share, self.tag, self.protocol.fstype
        target = share.target
        options = self.protocol.mount_options(readonly=share.readonly, extra=share.mount_options)
        mounted = self.vm.guest.mounts.get(target)
        if mounted is not None and (mounted.source != tag or mounted.fstype != fstype):
            raise UsageError(
                f"{target} in VM {share.vm!r} is already a mount point "
                f"({mounted.fstype} from {mounted.source})",
                hint="choose another guest path, or unmount it in the guest",
            )
        steps: list[Step] = []
        if mounted is None:
            if target not in self.vm.guest.existing_dirs:
                undo = self.step(
                    "guest", "rmdir_empty", f"remove mount point {target} if empty", path=target
                )
                steps.append(
                    self.step("guest", "mkdir", f"create mount point {target}", undo, path=target)
                )
            undo = self.step("guest", "unmount", f"unmount {target}", target=target)
            steps.append(
                self.step(
                    "guest",
                    "mount",
                    f"mount {tag} on {target} ({','.join(options)})",
                    undo,
                    source=tag,
                    target=target,
                    fstype=fstype,
                    options=options,
                )
            )
        if share.persist and tag not in self.vm.guest.fstab_entries:
            undo = self.step(
                "guest", "fstab_remove", f"remove {target} from /etc/fstab", entry_id=tag
            )
            steps.append(
                self.step(
                    "guest",
                    "fstab_add",
                    f"persist {target} in /etc/fstab (nofail)",
                    undo,
                    entry_id=tag,
                    source=tag,
                    target=target,
                    fstype=fstype,
                    options=[*options, "nofail"],
                )
            )
        if steps or out.hypervisor:
            what = "read" if share.readonly else "write/read"
            steps.append(
                self.step(
                    "guest",
                    "probe",
                    f"{what} probe of {target}",
                    target=target,
                    writable=not share.readonly,
                )
            )
        out.guest.extend(steps)


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
        if vm.running and not vm.guest.reachable:
            raise_guest_unreachable(share.vm, vm)
        steps = _ShareSteps(share, vm, protocol)
        steps.host(host.exists, out)
        steps.hypervisor(out)
        steps.guest(out)
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


def _power_change(vm_name: str, vm: VmFacts, out: _Builder) -> tuple[str, str, str, str] | None:
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
