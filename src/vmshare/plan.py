"""The Plan: a pure function of Spec + Facts (+ the State journal) -> ordered Steps.

Each Step carries its undo and, where vmshare chose something, the reason. Re-planning an
applied spec yields no steps. Nothing here touches a system.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from vmshare.devicesteps import DeviceShareSteps
from vmshare.errors import GuestError, NotFoundError, UsageError
from vmshare.facts import Facts, VmFacts
from vmshare.netsteps import USER_NET_WARNING, HostServers, NetworkShareSteps, addresses
from vmshare.protocols import device_protocol, mount_tag, nfs, smb
from vmshare.sharesteps import VmSteps
from vmshare.spec import ShareSpec, Spec, VmSpec
from vmshare.state import ShareRecord, State, now
from vmshare.steps import Layer, Step

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
    _check_device_limits(share, name, asked=requested != "auto")
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


# virtiofsd gets the host path inside "-o source=...", where ',' separates options and '\\'
# escapes: libvirt 9.0 passes both through unescaped, and the path arrives mangled.
VIRTIOFS_UNSAFE = (",", "\\")


def _check_device_limits(share: ShareSpec, name: str, asked: bool) -> None:
    if name != "virtiofs":
        return
    unsafe = [ch for ch in VIRTIOFS_UNSAFE if ch in str(share.source)]
    if unsafe:
        raise UsageError(
            f"virtiofs cannot carry {' or '.join(repr(c) for c in unsafe)} in the host path "
            f"{share.source} (libvirt hands it to virtiofsd inside an option list)",
            hint="rename the folder, or pass --protocol 9p (needs --restart) or --protocol nfs",
        )
    if share.readonly and asked:
        raise UsageError(
            "libvirt refuses read-only virtiofs devices, and a read-only guest mount alone "
            "could be remounted read-write by root in the guest",
            hint="drop --protocol virtiofs (read-only shares use 9p, enforced by QEMU) or use nfs",
        )


def drifted(record: ShareRecord, share: ShareSpec) -> bool:
    return record.requested != requested_settings(share)


def requested_settings(share: ShareSpec) -> dict[str, object]:
    return share.model_dump(mode="json", exclude={"name", "create"})


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
    if tag in vm.config_devices or tag in vm.live_devices:
        plan.steps.append(
            step(
                "hypervisor",
                "detach_filesystem",
                f"detach device {tag}",
                tag=tag,
                live=True,
                config=True,
            )
        )
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
        if choice.protocol in NETWORK_PROTOCOLS:
            if servers is None:
                raise UsageError("network shares need the host's file server settings")
            where = addresses(vm_spec, vm)
            if where.client == "127.0.0.1":
                choice.warnings.append(USER_NET_WARNING)
            network = NetworkShareSteps(share, vm, facts, servers, where, explained)
            network.host_folder(host, out)
            network.nfs(out) if choice.protocol == "nfs" else network.smb(out)
        else:
            device = DeviceShareSteps(share, vm, device_protocol(choice.protocol), explained)
            device.host_folder(host, out)
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
                plan.notes.append(f"{record.label}: no longer in the spec, so it would be removed")
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
