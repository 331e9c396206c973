"""The commands behind the CLI: each takes models and returns data; none prints.

A ``Session`` holds the backends and guest channels one command uses, and is the executor's
runtime: it maps a step's layer to the object that carries out its action.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmshare import fleet
from vmshare.apply import Journal, Outcome, Progress, execute
from vmshare.backends import load_backend
from vmshare.backends.base import Backend
from vmshare.errors import (
    BackendUnavailable,
    Declined,
    GuestError,
    NotFoundError,
    UsageError,
    VmshareError,
)
from vmshare.facts import GuestFacts, PathFact, VmFacts, gather, probe_path
from vmshare.guest import Guest, GuestOs, guest_for
from vmshare.host import Host, privileged
from vmshare.host.local import LocalHost
from vmshare.plan.choice import NETWORK_PROTOCOLS, network_protocols
from vmshare.plan.model import Plan
from vmshare.plan.network import HostServers
from vmshare.plan.power import NeedsOff, stop_around
from vmshare.plan.removal import orphan_plan, recovery_plan, removal_plan
from vmshare.plan.resolve import resolve
from vmshare.plan.step import Step
from vmshare.secrets import SecretStore
from vmshare.spec import Spec, VmSpec, load_host_settings, share_ref, vm_settings
from vmshare.state import ShareRecord, State, StateStore

# Called with a plan that has steps, after planning and before any change; False stops the run.
# The CLI shows the plan there and, when the plan removes or replaces shares, asks.
Confirm = Callable[[Plan], bool]


class Session:
    def __init__(self, vms: dict[str, VmSpec], store: StateStore, spec: Spec | None = None) -> None:
        self.vms, self.store = vms, store
        self.spec = spec  # its [host] table, if any, overrides host.toml
        self.secrets = SecretStore(store.directory)
        self.local_host = LocalHost(self.secrets)
        self._servers: HostServers | None = None
        self._backends: dict[tuple[str, str], Backend] = {}
        self._hosts: dict[tuple[str, str], Host] = {}
        self._guests: dict[str, Guest] = {}
        self._guest_os: dict[str, GuestOs] = {}  # as each VM's backend reported it
        self.restart_follows: set[str] = set()  # VMs the plan being run restarts

    @property
    def servers(self) -> HostServers:
        """The host's file servers; host.toml is read only when a share needs them."""
        if self._servers is None:
            self._servers = HostServers.from_settings(load_host_settings(self.spec))
        return self._servers

    def check_privileges(self, plan: Plan) -> None:
        """Would sudo run every root command the plan's steps on this host need? Asked before
        any change (host/privileged.py ``preflight``); as root, nothing is asked."""
        protocols = {
            step.action.split("_", 1)[0]
            for step in plan.steps
            if step.layer == "host"
            and step.action.startswith(("nfs_", "smb_"))
            and self.host(step.vm) is self.local_host
        }
        if protocols:
            privileged.preflight(self.servers.settings, protocols)

    def exports(self, protocol: str) -> dict[str, str]:
        return self.servers.entries(protocol)

    def backend(self, vm: str) -> Backend:
        spec = self.vms[vm]
        key = (spec.backend, spec.connection_key())
        if key not in self._backends:
            self._backends[key] = load_backend(spec)
            self._backends[key].restart_follows = self.restart_follows
        return self._backends[key]

    def host(self, vm: str) -> Host:
        """The host layer of ``vm``: its backend's host, one per backend instance; every backend
        that keeps ``Backend.host``'s default shares the local host. A step of no VM (prune of
        an export in this machine's servers that no VM's facts explain) runs here."""
        if vm not in self.vms:
            return self.local_host
        spec = self.vms[vm]
        key = (spec.backend, spec.connection_key())
        if key not in self._hosts:
            backend = self.backend(vm)
            if type(backend).host is Backend.host:
                self._hosts[key] = self.local_host
            else:
                self._hosts[key] = backend.host(self.secrets)
        return self._hosts[key]

    def guest_os(self, vm: str) -> GuestOs:
        """The VM's guest OS: as its settings say, or (``auto``) as its backend reports it in
        the VM's capabilities."""
        wanted = self.vms[vm].guest.os
        if wanted != "auto":
            return wanted
        if vm not in self._guest_os:
            backend = self.backend(vm)
            with backend.sdk_errors():
                self._guest_os[vm] = backend.inspect(vm).capabilities.guest_os
        return self._guest_os[vm]

    def guest(self, vm: str) -> Guest:
        if vm not in self._guests:
            channel = self.backend(vm).guest_channel(self.vms[vm])
            self._guests[vm] = guest_for(self.guest_os(vm), channel, vm, self.secrets)
        return self._guests[vm]

    def layer(self, layer: str, vm: str) -> Any:
        if layer == "host":
            return self.host(vm)
        if layer == "hypervisor":
            return _SdkMapped(self.backend(vm))
        return self.guest(vm)

    def probe_source(self, vm: str, source: Path) -> PathFact:
        """A share's folder, looked at where the VM's host layer keeps it: a host that can say
        (``probe_path``: the Windows host of Hyper-V) is asked, else this machine."""
        probe = getattr(self.host(vm), "probe_path", None)
        if probe is None:
            return probe_path(source)
        fact: PathFact = probe(str(source))
        return fact

    def probe_vm(self, vm: str, targets: list[str]) -> VmFacts:
        backend = self.backend(vm)
        with backend.sdk_errors():
            facts = backend.inspect(vm)
        self._guest_os.setdefault(vm, facts.capabilities.guest_os)
        if facts.running:
            try:
                facts.guest = self.guest(vm).inspect(targets)
            except GuestError as exc:
                facts.guest = GuestFacts(reachable=False, error=exc.message, hint=exc.hint)
        return facts

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()


class _SdkMapped:
    """A backend whose every verb runs inside its ``sdk_errors()``: no bare SDK exception
    reaches the executor (it would report it as an internal error)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def __getattr__(self, action: str) -> Callable[..., str | None]:
        verb = getattr(self._backend, action)

        def mapped(**args: Any) -> str | None:
            with self._backend.sdk_errors():
                note: str | None = verb(**args)
            return note

        return mapped


def restarted_after_detach(plan: Plan) -> set[str]:
    """The VMs that the plan restarts after detaching a device from them."""
    detached: set[str] = set()
    restarted: set[str] = set()
    for step in plan.steps:
        if step.action == "detach_share":
            detached.add(step.vm)
        elif step.action == "restart" and step.vm in detached:
            restarted.add(step.vm)
    return restarted


def with_known_vms(spec: Spec) -> Spec:
    """A VM the spec names without a ``[vm.NAME]`` table takes host.toml's table, if any (the
    machine's own description of it, as ``vmshare add`` uses)."""
    missing = {share.vm for share in spec.share} - set(spec.vm)
    if not missing:
        return spec
    known = load_host_settings().vm
    found = {name: known[name] for name in sorted(missing) if name in known}
    return spec.model_copy(update={"vm": {**spec.vm, **found}}) if found else spec


def _vms_of(spec: Spec) -> dict[str, VmSpec]:
    return {share.vm: spec.vm_for(share.vm) for share in spec.share}


@dataclass
class Result:
    plan: Plan
    outcome: Outcome | None = None
    dry_run: bool = False
    saved_to: str | None = None
    notes: list[str] = field(default_factory=list)
    vms: list[dict[str, Any]] | None = None  # an apply on several VMs: each VM's result


def _plan(
    spec: Spec,
    origin: str,
    state: State,
    session: Session,
    allow_restart: bool,
    prune: bool,
    replace: bool = False,
    parallel: int = 1,
) -> Plan:
    # VM facts first: they say which protocols each share will use, and only the exports of
    # those are probed (a backend with no device share needs no NFS server to plan SMB).
    facts = gather(spec, _probes(spec, session, parallel))
    for share in spec.share:
        # a folder of a Windows host (Hyper-V) is looked at there, not on this machine
        if facts.vms[share.vm].capabilities.host_os == "windows":
            facts.host_paths[str(share.source)] = session.probe_source(share.vm, share.source)
    network = network_protocols(spec, facts)
    for protocol in sorted(network):
        facts.exports[protocol] = session.exports(protocol)
    plan = resolve(
        spec,
        facts,
        state,
        origin=origin,
        allow_restart=allow_restart,
        prune=prune,
        replace=replace,
        servers=session.servers if network else None,
    )
    _stop_where_needed(plan, session, allow_restart)
    return plan


def _probes(spec: Spec, session: Session, parallel: int) -> Callable[[str, list[str]], VmFacts]:
    """``probe_vm`` for ``gather``: with ``parallel`` > 1 every VM is probed first, that many at
    once, each worker through a Session of its own (hypervisor connections are per thread)."""
    targets: dict[str, list[str]] = {}
    for share in spec.share:
        targets.setdefault(share.vm, []).append(share.target)
    if parallel <= 1 or len(targets) <= 1:
        return session.probe_vm
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()
    made: list[Session] = []

    def probe(vm: str) -> VmFacts:
        if not hasattr(local, "session"):
            local.session = Session(session.vms, session.store, session.spec)
            made.append(local.session)
        facts: VmFacts = local.session.probe_vm(vm, targets[vm])
        return facts

    try:
        with ThreadPoolExecutor(max_workers=min(parallel, len(targets))) as pool:
            found = dict(zip(targets, pool.map(probe, targets), strict=True))
    finally:
        for each in made:
            each.close()
    for vm, facts in found.items():
        session._guest_os.setdefault(vm, facts.capabilities.guest_os)
    return lambda vm, _targets: found[vm]


def _stop_where_needed(plan: Plan, session: Session, allow_restart: bool) -> None:
    """Stop a running VM around the hypervisor steps its backend can carry out only while it is
    off (with --restart), or block the plan before any change (``plan.power``)."""

    def needs_off(step: Step) -> NeedsOff | None:
        if step.vm not in session.vms:  # a pruned share's VM may have no settings here
            return None
        backend = session.backend(step.vm)
        with backend.sdk_errors():
            return backend.needs_off(step)

    stop_around(plan, needs_off, allow_restart=allow_restart)


def _explain(plan: Plan, session: Session) -> None:
    """Each step's exact commands, as its backend says them, for a plan that is shown."""
    for step in plan.steps:
        if step.vm not in session.vms:  # a pruned share's VM may have no settings here
            continue
        try:
            backend = session.backend(step.vm)
            with backend.sdk_errors():
                lines = backend.explain(step)
        except VmshareError:
            continue  # an unreachable hypervisor: the summary still says what the step does
        if lines and step.script is None:
            step.script = "\n".join(lines)


def _check_names(spec: Spec, state: State, origin: str, prune: bool) -> None:
    """A share name is unique per VM: it is what `remove NAME` and `list` show."""
    listed = {share.key for share in spec.share}
    for share in spec.share:
        if share.name is None:
            continue
        for record in state.shares.values():
            if record.key == share.key or record.vm != share.vm or record.name != share.name:
                continue
            if prune and record.origin == origin and record.key not in listed:
                continue  # this run removes it
            raise UsageError(
                f"share name {share.name!r} is already used in VM {share.vm!r} by {record.key}",
                hint=f"choose another --name, or remove that share first: "
                f"vmshare remove {record.key}",
            )


def _prune_notes(spec: Spec, origin: str, state: State) -> list[str]:
    """What `--prune` would remove: shares an earlier apply of this file made that it dropped."""
    listed = {share.key for share in spec.share}
    return [
        f"{record.label}: no longer in the spec; `apply --prune` would remove it"
        for record in state.shares.values()
        if record.origin == origin and record.key not in listed
    ]


def _recover(
    spec: Spec, store: StateStore, state: State, session: Session, progress: Progress | None
) -> None:
    """Undo what an earlier run of these shares began but never journalled as complete (it was
    killed or crashed), before planning from what really exists."""
    keys = {share.key for share in spec.share}
    plan = recovery_plan([r for r in state.shares.values() if r.key in keys])
    if plan.steps:
        execute(plan, session, Journal(store, state, plan), progress)


def plan_shares(
    spec: Spec,
    origin: str,
    store: StateStore,
    *,
    allow_restart: bool = False,
    prune: bool = False,
    replace: bool = False,
) -> Result:
    """The plan for ``spec``, changing nothing."""
    spec = with_known_vms(spec)
    session = Session(_vms_of(spec), store, spec)
    try:
        state = store.load()
        _check_names(spec, state, origin, prune)
        plan = _plan(spec, origin, state, session, allow_restart, prune, replace)
        _explain(plan, session)
        interrupted = [r.label for r in state.shares.values() if r.pending]
        notes = [
            f"{label}: an earlier run was interrupted; apply would first undo its unfinished step"
            for label in interrupted
            if any(label == s.label for s in spec.share)
        ]
        if not prune and origin != "cli":
            notes += _prune_notes(spec, origin, state)
        return Result(plan=plan, dry_run=True, notes=notes)
    finally:
        session.close()


def apply_shares(
    spec: Spec,
    origin: str,
    store: StateStore,
    *,
    allow_restart: bool = False,
    prune: bool = False,
    replace: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    confirm: Confirm | None = None,
    preview: str = "vmshare plan",
    parallel: int | None = None,
) -> Result:
    """Make the systems match ``spec``; on failure undo this run's steps (and bring back a
    share it was replacing). A share vmshare made with other settings is replaced only with
    ``replace``. ``preview`` is the command that shows this plan, for hints.

    The VMs' parts of the plan run ``parallel`` at once (default: ``fleet.default_parallel``;
    1: one plan, in order, as one transaction); each part rolls back on its own failure, and
    the failures are raised together at the end (``FleetFailed`` when others succeeded)."""
    if dry_run:
        return plan_shares(
            spec, origin, store, allow_restart=allow_restart, prune=prune, replace=replace
        )
    spec = with_known_vms(spec)

    def changed_vms(state: State) -> set[str]:
        vms = {share.vm for share in spec.share}
        if prune:  # the VMs of shares this file made and no longer lists
            vms |= {r.vm for r in state.shares.values() if r.origin == origin}
        return vms

    with _vms_locked(store, changed_vms) as state:
        session = Session(_vms_of(spec), store, spec)
        workers = parallel or fleet.default_parallel(len(_vms_of(spec)))
        try:
            _check_names(spec, state, origin, prune)
            _recover(spec, store, state, session, progress)
            plan = _plan(spec, origin, state, session, allow_restart, prune, replace, workers)
            if plan.blockers:
                raise UsageError(plan.blockers[0], hint=f"`{preview}` shows every step and why")
            _confirmed(plan, confirm, session)
            session.restart_follows.update(restarted_after_detach(plan))
            parts = fleet.split(plan, state)
            if workers <= 1 or len(parts) <= 1:
                outcome = execute(plan, session, Journal(store, state, plan), progress)
                return Result(plan=plan, outcome=outcome)
            return _apply_parts(plan, parts, state, store, session, workers, progress)
        finally:
            session.close()


def _apply_parts(
    plan: Plan,
    parts: list[Plan],
    state: State,
    store: StateStore,
    session: Session,
    workers: int,
    progress: Progress | None,
) -> Result:
    """Each VM's part of ``plan`` through the executor, ``workers`` at once (see fleet.py)."""
    made: list[Session] = []

    def runtime() -> Session:
        worker = Session(session.vms, store, session.spec)
        worker.restart_follows.update(session.restart_follows)
        made.append(worker)
        return worker

    stop = threading.Event()
    try:
        result = fleet.run_parts(
            parts, state, store, runtime, parallel=workers, progress=progress, stop=stop
        )
    finally:
        for each in made:
            each.close()
    fleet.raise_failures(result, interrupted=stop.is_set())
    vms = [r.as_json() for r in result.results]
    return Result(plan=plan, outcome=result.outcome, vms=vms)


@contextmanager
def _vms_locked(store: StateStore, vms_of: Callable[[State], set[str]]) -> Iterator[State]:
    """Hold the locks of the VMs a command changes (``vms_of`` the state, which can change
    until they are held), and give the state as it is once they are."""
    wanted = vms_of(store.load())
    for _ in range(3):
        with store.vms_locked(wanted):
            state = store.load()
            now = vms_of(state)
            if now <= wanted:
                yield state
                return
        wanted |= now
    with store.vms_locked(wanted):
        yield store.load()


def _confirmed(plan: Plan, confirm: Confirm | None, session: Session) -> None:
    if plan.removes and confirm is not None:
        _explain(plan, session)  # a plan that removes shares is shown before it is confirmed
    if plan.steps and confirm is not None and not confirm(plan):
        raise Declined("not confirmed; nothing changed")
    session.check_privileges(plan)


def _remove_orphans(
    ref: str,
    store: StateStore,
    state: State,
    *,
    allow_restart: bool,
    dry_run: bool,
    progress: Progress | None,
    confirm: Confirm | None,
) -> Result:
    """``remove VM:PATH`` with no record: clean what carries that share's names, if anything."""
    key = share_ref(ref)
    vm_name, sep, target = key.partition(":")
    not_found = NotFoundError(
        f"vmshare has no share {ref!r}",
        hint="`vmshare list` shows the shares vmshare made (as VM:GUEST_PATH or name)",
    )
    if not sep or not target.startswith("/"):
        raise not_found
    # host.toml describes the VM (a vSphere or Hyper-V one) as it does for `add`
    settings = load_host_settings().vm.get(vm_name) or vm_settings(vm_name)
    session = Session({vm_name: settings}, store)
    try:
        try:
            vm = session.probe_vm(vm_name, [target])
        except BackendUnavailable as exc:
            # no record is the answer; the hypervisor only says whether leftovers remain
            raise NotFoundError(
                not_found.message,
                hint=f"{not_found.hint}; leftovers of it on the VM could not be looked for "
                f"({exc.message})",
            ) from None
        if not vm.exists:
            raise not_found
        servers, exports = _servers_and_exports(session)
        plan = orphan_plan(key, vm, exports, servers)
        if not plan.steps:
            raise not_found
        _stop_where_needed(plan, session, allow_restart)
        plan.notes.append(
            f"no record of {key}, but the VM or the host's file servers hold objects with its "
            "names (a lost state file, or one in another state dir): remove undoes them"
        )
        if dry_run:
            return Result(plan=plan, dry_run=True)
        _unblocked(plan)
        _confirmed(plan, confirm, session)
        outcome = execute(plan, session, Journal(store, state, plan), progress)
        return Result(plan=plan, outcome=outcome)
    finally:
        session.close()


def _unblocked(plan: Plan) -> None:
    """A removal that is blocked stops here, before any change."""
    if plan.blockers:
        raise UsageError(
            plan.blockers[0] + "; nothing was removed",
            hint="`vmshare remove --dry-run` shows every step and why",
        )


def _servers_and_exports(session: Session) -> tuple[HostServers | None, dict[str, dict[str, str]]]:
    """The host's file servers and vmshare's entries in them; none where host.toml is unusable
    or a server config cannot be read (then only guest and hypervisor objects are found)."""
    servers, exports, _why = host_exports(session)
    return servers, exports


def host_exports(
    session: Session,
) -> tuple[HostServers | None, dict[str, dict[str, str]], str | None]:
    """As ``_servers_and_exports``, with why the servers could not be looked at, if not."""
    try:
        servers = session.servers
        return servers, {p: servers.entries(p) for p in NETWORK_PROTOCOLS}, None
    except VmshareError as exc:
        return None, {}, exc.message
    except OSError as exc:
        return None, {}, str(exc)


def find_records(refs: list[str], state: State) -> list[ShareRecord] | None:
    """The records ``refs`` name: each a share (VM:DST or name) or a VM (every share of it).
    None when a single ref names nothing (it may name an unrecorded share)."""
    found: dict[str, ShareRecord] = {}
    for ref in refs:
        record = state.find(ref)
        if record is not None:
            found.setdefault(record.key, record)
            continue
        of_vm = state.listed(ref) if ":" not in ref else []
        if of_vm:
            found.update((r.key, r) for r in of_vm if r.key not in found)
            continue
        if len(refs) == 1:
            return None
        raise NotFoundError(
            f"vmshare has no share or VM {ref!r}; nothing was removed",
            hint="`vmshare list` shows the shares vmshare made (as VM:GUEST_PATH or name)",
        )
    return list(found.values())


def remove_shares(
    refs: list[str],
    store: StateStore,
    *,
    allow_restart: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    confirm: Confirm | None = None,
) -> Result:
    """Undo every layer vmshare set up for these shares (a VM's name: all of its shares) in one
    plan; the user's files are not touched."""

    def changed_vms(state: State) -> set[str]:
        try:
            records = find_records(refs, state)
        except NotFoundError:
            records = []
        if records is None:  # an unrecorded share: its leftovers are looked for on its VM
            return {share_ref(refs[0]).partition(":")[0]}
        return {r.vm for r in records}

    with _vms_locked(store, changed_vms) as state:
        records = find_records(refs, state)
        if records is None:
            return _remove_orphans(
                refs[0],
                store,
                state,
                allow_restart=allow_restart,
                dry_run=dry_run,
                progress=progress,
                confirm=confirm,
            )
        plan = removal_plan(records, allow_restart=allow_restart)
        session = Session({r.vm: r.vm_spec for r in records}, store)
        try:
            stopped = _start_for_guest_steps(plan, session, allow_restart)
            _stop_where_needed(plan, session, allow_restart)
            if dry_run:
                _explain(plan, session)
                return Result(plan=plan, dry_run=True)
            if stopped:
                raise UsageError(
                    plan.blockers[0],
                    hint=f"start VM {stopped[0]} and run the command again, or add --restart; "
                    "nothing was changed",
                )
            _unblocked(plan)
            _confirmed(plan, confirm, session)
            session.restart_follows.update(restarted_after_detach(plan))
            outcome = execute(plan, session, Journal(store, state, plan), progress)
        finally:
            session.close()
        return Result(plan=plan, outcome=outcome)


def _start_for_guest_steps(plan: Plan, session: Session, allow_restart: bool) -> list[str]:
    """A removal undoes its guest side inside the guest: a VM that is off starts first (with
    ``allow_restart``), or the plan is blocked before any step changes anything; the VMs that
    block it."""
    stopped: list[str] = []
    firsts: dict[str, int] = {}
    for index, step in enumerate(plan.steps):
        if step.layer == "guest":
            firsts.setdefault(step.vm, index)
    for vm, index in sorted(firsts.items(), key=lambda item: -item[1]):
        try:
            facts = session.backend(vm).inspect(vm)
        except VmshareError:
            continue  # an unreachable hypervisor: the steps say why when they run
        if not facts.exists or facts.running:
            continue
        if not allow_restart:
            plan.blockers.append(
                f"VM {vm!r} is not running: removing its share unmounts it inside the guest"
            )
            stopped.append(vm)
            continue
        reason = "the share is unmounted inside the guest, which needs the VM running"
        start = Step(
            share=plan.steps[index].share,
            layer="hypervisor",
            action="start",
            vm=vm,
            summary=f"start VM {vm}",
            reason=reason,
        )
        plan.steps.insert(index, start)
    return stopped


def remove_share(
    ref: str,
    store: StateStore,
    *,
    allow_restart: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Result:
    """Undo every layer vmshare set up for one share; the user's files are not touched."""
    return remove_shares(
        [ref], store, allow_restart=allow_restart, dry_run=dry_run, progress=progress
    )
