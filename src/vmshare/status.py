"""Live health of the shares vmshare made: host folder, device, mount, fstab, read/write probe."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vmshare.core import Session
from vmshare.errors import NotFoundError, VmshareError
from vmshare.facts import VmFacts
from vmshare.formats import fstab
from vmshare.protocols import TAG_PREFIX
from vmshare.spec import vm_settings
from vmshare.state import ShareRecord, StateStore

Check = Literal["ok", "missing", "failed", "n/a", "unknown"]
LAYERS = ("host", "export", "device", "mount", "fstab", "probe")


class ShareHealth(BaseModel):
    key: str
    label: str
    vm: str
    target: str
    source: str
    protocol: str
    readonly: bool
    checks: dict[str, Check]
    problems: list[str] = []
    unfinished: list[str] = []  # steps an interrupted run began and never journalled as done

    @property
    def healthy(self) -> bool:
        ok = all(value in ("ok", "n/a") for value in self.checks.values())
        return ok and not self.unfinished


def _check_record(
    record: ShareRecord, facts: VmFacts | None, session: Session, error: str | None
) -> ShareHealth:
    checks: dict[str, Check] = dict.fromkeys(LAYERS, "unknown")
    problems: list[str] = []
    source = Path(record.source)
    checks["host"] = "ok" if source.is_dir() else "missing"
    if checks["host"] != "ok":
        problems.append(f"host folder {record.source} is missing")
    checks["export"] = _export_check(record, session, problems)
    network = record.protocol in ("nfs", "smb")
    unfinished = [step.summary for step in record.pending]
    if unfinished:
        problems.append(
            f"an interrupted run left {len(unfinished)} unfinished step(s) ({unfinished[0]}); "
            f"`vmshare remove {record.key}` or the same add/apply again cleans it up"
        )
    if facts is None:
        problems.append(error or "VM not reachable")
    elif not facts.exists:
        checks["device"] = "missing"
        problems.append(f"VM {record.vm!r} no longer exists")
    else:
        if network:
            checks["device"] = "n/a"
        else:
            in_config = record.tag in facts.persistent_devices
            in_vm = not facts.running or record.tag in facts.running_devices
            checks["device"] = "ok" if in_config and in_vm else "missing"
            if not in_config:
                problems.append("device missing from the VM config")
            if not in_vm:
                problems.append("device missing from the running VM")
        if not facts.running:
            problems.append("VM is not running")
        elif not facts.guest.reachable:
            problems.append(facts.guest.error or "guest not reachable")
        else:
            mounted = facts.guest.mounts.get(record.target)
            mount_step = next((s for s in record.steps if s.action == "mount"), None)
            wanted = mount_step.args["source"] if mount_step else record.tag
            checks["mount"] = "ok" if mounted and mounted.source == wanted else "missing"
            if checks["mount"] != "ok":
                problems.append(f"{record.target} is not mounted in the guest")
            if record.requested.get("persist", True):
                checks["fstab"] = "ok" if record.tag in facts.guest.fstab_entries else "missing"
            else:
                checks["fstab"] = "n/a"
            if checks["mount"] == "ok":
                try:
                    session.guest(record.vm).probe(record.target, writable=not record.readonly)
                    checks["probe"] = "ok"
                except VmshareError as exc:
                    checks["probe"] = "failed"
                    problems.append(exc.message)
    return ShareHealth(
        key=record.key,
        label=record.label,
        vm=record.vm,
        target=record.target,
        source=record.source,
        protocol=record.protocol,
        readonly=record.readonly,
        checks=checks,
        problems=problems,
        unfinished=unfinished,
    )


def _export_check(record: ShareRecord, session: Session, problems: list[str]) -> Check:
    """Is the share's entry still in the file server config of the VM's host?"""
    steps = [*record.steps, *record.pending]
    step = next((s for s in steps if s.action in ("nfs_export", "smb_share")), None)
    if step is None:
        return "n/a" if record.protocol not in ("nfs", "smb") else "unknown"
    try:
        host = session.host(record.vm)
    except VmshareError:  # its backend cannot be reached: the VM's check says why
        return "unknown"
    try:
        entries = host.export_entries(step.action, step.args)
    except OSError as exc:
        problems.append(f"cannot read the server config: {exc}")
        return "unknown"
    if record.tag in entries:
        return "ok"
    problems.append("the export is gone from the server's config")
    return "missing"


def _unrecorded(vm: str, facts: VmFacts, known_tags: set[str]) -> list[ShareHealth]:
    """Objects with vmshare's names (device tags, fstab entry ids) that no record explains."""
    found: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    for where, devices in (
        ("config", facts.persistent_devices),
        ("running VM", facts.running_devices),
    ):
        for tag, device in devices.items():
            if tag.startswith(TAG_PREFIX) and tag not in known_tags:
                found.setdefault(tag, []).append(f"device ({where})")
                sources[tag] = device.source
    targets: dict[str, str] = {}
    for tag, line in facts.guest.fstab_entries.items():
        if tag not in known_tags:
            found.setdefault(tag, []).append("fstab entry")
            entries = fstab.parse_table(line)
            if entries:
                targets[tag] = entries[0].target
    rows = []
    for tag, what in sorted(found.items()):
        target = targets.get(tag, "?")
        key = f"{vm}:{target}"
        how = f"`vmshare remove {key}`" if target != "?" else "detaching it in the hypervisor"
        rows.append(
            ShareHealth(
                key=key,
                label=f"unrecorded {tag}",
                vm=vm,
                target=target,
                source=sources.get(tag, "?"),
                protocol="?",
                readonly=False,
                checks=dict.fromkeys(LAYERS, "unknown"),
                problems=[f"{', '.join(what)} that no vmshare record explains; {how} removes it"],
            )
        )
    return rows


def share_health(store: StateStore, vm: str | None = None) -> list[ShareHealth]:
    """Every recorded share's health, and objects with vmshare's names that no record explains
    on the VMs looked at (with ``vm``, that VM even when vmshare has no record of it)."""
    state = store.load()
    by_vm: dict[str, list[ShareRecord]] = {}
    for record in state.listed(vm):
        by_vm.setdefault(record.vm, []).append(record)
    if vm is not None and vm not in by_vm:
        by_vm[vm] = []
    known_tags = {record.tag for record in state.shares.values()}
    health: list[ShareHealth] = []
    for vm_name, vm_records in by_vm.items():
        vm_spec = vm_records[0].vm_spec if vm_records else vm_settings(vm_name)
        session = Session({vm_name: vm_spec}, store)
        facts: VmFacts | None = None
        error = None
        try:
            facts = session.probe_vm(vm_name, [r.target for r in vm_records])
        except VmshareError as exc:
            if not vm_records:  # a VM named on the command line: its error is the answer
                session.close()
                raise
            error = exc.message
        if not vm_records and facts is not None and not facts.exists:
            session.close()
            raise NotFoundError(
                f"VM {vm_name!r} not found on {facts.connection}, and vmshare has no share in it",
                hint=facts.find_hint,
            )
        try:
            health += [_check_record(r, facts, session, error) for r in vm_records]
            if facts is not None and facts.exists:
                health += _unrecorded(vm_name, facts, known_tags)
        finally:
            session.close()
    return health
