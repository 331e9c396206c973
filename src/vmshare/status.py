"""Live health of the shares vmshare made: host folder, device, mount, fstab, read/write probe,
and the record the VM keeps of the share (on backends that keep one)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vmshare.core import Session
from vmshare.errors import NotFoundError, VmshareError
from vmshare.facts import VmFacts
from vmshare.plan.leftovers import guest_targets, is_tag, vm_leftovers
from vmshare.spec import VmSpec, vm_settings
from vmshare.state import ShareRecord, StateStore

Check = Literal["ok", "missing", "failed", "n/a", "unknown"]
LAYERS = ("host", "export", "device", "mount", "fstab", "probe", "record")


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
    checks["host"] = _host_check(record, session, problems)
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
        checks["record"] = _record_check(record, facts, problems)
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


def _host_check(record: ShareRecord, session: Session, problems: list[str]) -> Check:
    """Is the share's folder still there, where its VM's host layer keeps it (a Windows host's
    C:\\... is asked of that host, not looked for on this machine)?"""
    try:
        fact = session.probe_source(record.vm, Path(record.source))
    except VmshareError as exc:  # its host cannot be reached: say so, do not guess
        problems.append(f"cannot look at host folder {record.source}: {exc.message}")
        return "unknown"
    if fact.is_dir:
        return "ok"
    problems.append(f"host folder {record.source} is missing")
    return "missing"


def _record_check(record: ShareRecord, facts: VmFacts, problems: list[str]) -> Check:
    """Does the VM still hold vmshare's record of the share, as the journal wrote it?"""
    if not facts.capabilities.records:
        return "n/a"
    held = facts.records.get(record.tag)
    where = facts.capabilities.record_where.format(tag=record.tag)
    if held is None:
        problems.append(
            f"the VM's record of the share ({where}) is gone; the same add/apply writes it again"
        )
        return "missing"
    written = [s.args.get("record") for s in record.steps if s.action == "record_share"]
    if written and held != written[-1]:
        problems.append(
            f"the VM's record ({where}) now names another share: from {held.get('source')} "
            f"on host {held.get('host')}"
        )
        return "failed"
    return "ok"


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


def _made_elsewhere(vm: str, facts: VmFacts, known_tags: set[str]) -> list[ShareHealth]:
    """Shares the VM's own records name that this workstation's state does not know: made by
    another workstation or a CI job, whose state knows (and checks) their layers."""
    rows = []
    for tag, held in sorted(facts.records.items()):
        if tag in known_tags:
            continue
        target = str(held.get("target", "?"))
        host = str(held.get("host", "?"))
        rows.append(
            ShareHealth(
                key=str(held.get("key", f"{vm}:{target}")),
                label=f"{held.get('key', tag)} (made on {host})",
                vm=vm,
                target=target,
                source=str(held.get("source", "?")),
                protocol=str(held.get("protocol", "?")),
                readonly=bool(held.get("readonly", False)),
                checks={**dict.fromkeys(LAYERS, "n/a"), "record": "ok"},
                problems=[
                    f"made elsewhere (on {host}, per the VM's record): vmshare there checks "
                    "and removes it"
                ],
            )
        )
    return rows


# what each step of the leftover finder takes away, as status names it
_LEFTOVER = {"unmount": "guest mount", "fstab_remove": "fstab entry", "detach_share": "device"}


def _unrecorded(vm: str, facts: VmFacts, known_tags: set[str]) -> list[ShareHealth]:
    """Objects with vmshare's names (device tags, fstab entry ids, mounts) that no record
    explains: neither this workstation's state nor (see ``_made_elsewhere``) the VM's own
    records. Found by the leftover finder that ``prune`` and ``remove`` use."""
    known_tags = known_tags | set(facts.records)

    def wanted(tag: str) -> bool:
        return is_tag(tag) and tag not in known_tags

    targets = guest_targets(facts, wanted)
    found: dict[str, list[str]] = {}
    for step in vm_leftovers(vm, facts, wanted, lambda tag: tag):
        if step.action in _LEFTOVER:
            found.setdefault(step.share, []).append(_LEFTOVER[step.action])
    devices = {**facts.running_devices, **facts.persistent_devices}
    rows = []
    for tag, objects in sorted(found.items()):
        target = targets.get(tag, "?")
        key = f"{vm}:{target}"
        how = f"`vmshare remove {key}`" if target != "?" else "`vmshare prune`"
        rows.append(
            ShareHealth(
                key=key,
                label=f"unrecorded {tag}",
                vm=vm,
                target=target,
                source=devices[tag].source if tag in devices else "?",
                protocol="?",
                readonly=False,
                checks=dict.fromkeys(LAYERS, "unknown"),
                problems=[
                    f"{', '.join(objects)} that no vmshare record explains; {how} removes it"
                ],
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
                health += _made_elsewhere(vm_name, facts, known_tags)
                health += _unrecorded(vm_name, facts, known_tags)
        finally:
            session.close()
    return health


class VmShare(BaseModel):
    """A share of one VM as ``list --vm`` shows it: from this workstation's state, from the
    VM's own record, or both."""

    key: str
    label: str
    vm: str
    target: str
    source: str
    protocol: str
    readonly: bool
    made: Literal["here", "elsewhere"]  # this workstation's state knows it, or only the VM does
    host: str | None = None  # the workstation that made it, as the VM's record says
    created: str | None = None
    record: Literal["recorded", "missing", "n/a"]  # the VM's record of it; n/a: keeps none


def vm_shares(store: StateStore, vm: str, vm_spec: VmSpec | None = None) -> list[VmShare]:
    """The shares of ``vm``: this workstation's (from its state), then those that only the VM's
    own records name (made on another workstation or by a CI job). Reads the VM's facts from its
    backend, not its guest. ``vm_spec``: the VM's settings when the state has none."""
    records = store.load().listed(vm)
    spec = records[0].vm_spec if records else vm_spec or vm_settings(vm)
    session = Session({vm: spec}, store)
    try:
        backend = session.backend(vm)
        with backend.sdk_errors():
            facts = backend.inspect(vm)
    finally:
        session.close()
    if not facts.exists:
        raise NotFoundError(f"VM {vm!r} not found on {facts.connection}", hint=facts.find_hint)
    keeps = facts.capabilities.records
    rows: list[VmShare] = []
    for r in records:
        held = facts.records.get(r.tag)
        rows.append(
            VmShare(
                key=r.key,
                label=r.label,
                vm=vm,
                target=r.target,
                source=r.source,
                protocol=r.protocol,
                readonly=r.readonly,
                made="here",
                host=str(held["host"]) if held and "host" in held else None,
                created=r.created,
                record="n/a" if not keeps else "recorded" if held else "missing",
            )
        )
    known = {r.tag for r in records}
    for tag, held in sorted(facts.records.items(), key=lambda item: str(item[1].get("key"))):
        if tag in known:
            continue
        target = str(held.get("target", "?"))
        rows.append(
            VmShare(
                key=str(held.get("key", f"{vm}:{target}")),
                label=str(held.get("key", tag)),
                vm=vm,
                target=target,
                source=str(held.get("source", "?")),
                protocol=str(held.get("protocol", "?")),
                readonly=bool(held.get("readonly", False)),
                made="elsewhere",
                host=str(held["host"]) if "host" in held else None,
                created=str(held["created"]) if "created" in held else None,
                record="recorded",
            )
        )
    return rows
