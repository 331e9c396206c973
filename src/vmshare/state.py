"""What vmshare created: a versioned JSON journal under the platform state dir.

The journal is write-ahead: a step is recorded as *pending* (maybe done) before it runs and moved
to the completed steps after, so ``remove`` and a crashed run's recovery undo exactly what was
done, including a step that a crash interrupted. Writes are atomic; a file lock serialises
the writes (taken per write, see statewriter.py), and a lock per VM serialises the runs that
change one VM (see locks.py). Older files are brought up to date by ``MIGRATIONS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from vmshare.errors import LockTimeout, StateError
from vmshare.fsutil import atomic_write, private_dir
from vmshare.plan.step import Step
from vmshare.spec import VmSpec, share_ref
from vmshare.statefile import STATE_FILE, STATE_VERSION, default_state_dir

if TYPE_CHECKING:
    from vmshare.statewriter import StateWriter


def _v1_to_v2(document: dict[str, Any]) -> dict[str, Any]:
    """Version 2 adds each record's pending steps (a write-ahead journal); v1 had none."""
    for record in document.get("shares", {}).values():
        record.setdefault("pending", [])
    return {**document, "version": 2}


# Version 3 names hypervisor steps with the verbs every backend offers; version 2 journalled
# libvirt's own (the journal replays steps by name and keyword, so they are an on-disk API).
_V2_VERBS = {
    "attach_filesystem": "attach_share",
    "detach_filesystem": "detach_share",
    "add_shared_memory": "prepare",
}


def _v2_step(step: dict[str, Any]) -> dict[str, Any]:
    if step.get("undo"):
        step["undo"] = _v2_step(step["undo"])
    action = step.get("action")
    if step.get("layer") != "hypervisor" or action not in _V2_VERBS:
        return step
    args = dict(step.get("args", {}))
    scopes = [
        scope
        for scope, key in (("running", "live"), ("persistent", "config"))
        if args.pop(key, False)
    ]
    if action == "attach_filesystem":
        args["protocol"] = args.pop("driver")
        args["scopes"] = scopes
    elif action == "detach_filesystem":
        args["scopes"] = scopes
    else:
        args = {"prerequisite": "shared-memory"}
    return {**step, "action": _V2_VERBS[action], "args": args}


def _v2_to_v3(document: dict[str, Any]) -> dict[str, Any]:
    """Hypervisor steps take the generic verbs; a 9p share's device leaves a running VM only at a
    restart (libvirt cannot unplug 9p), which version 3 records per share."""
    for record in document.get("shares", {}).values():
        for key in ("steps", "pending"):
            record[key] = [_v2_step(step) for step in record.get(key, [])]
        record["detach_restarts"] = record.get("protocol") == "9p"
    return {**document, "version": 3}


# version N -> function turning a version-N document into version N+1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}


class ShareRecord(BaseModel):
    key: str
    name: str | None = None
    vm: str
    vm_spec: VmSpec  # backend, resolved connection and guest access, as used
    source: str
    target: str
    protocol: str
    tag: str
    readonly: bool
    detach_restarts: bool = False  # its device leaves a running VM only when the VM restarts
    requested: dict[str, Any]  # the share's settings as asked, to spot drift
    origin: str  # "cli" or the absolute path of the spec file that created it
    created: str
    steps: list[Step] = []  # completed, in order
    pending: list[Step] = []  # started but not known to be complete: maybe done

    @property
    def label(self) -> str:
        return self.name or self.key

    @property
    def undoable(self) -> bool:
        """Whether anything of this share may still exist for ``remove`` to undo."""
        return bool(self.pending) or any(step.undo is not None for step in self.steps)


class State(BaseModel):
    version: int = STATE_VERSION
    shares: dict[str, ShareRecord] = {}

    def listed(self, vm: str | None = None) -> list[ShareRecord]:
        """The shares (of one VM, or all), sorted by key."""
        records = (r for r in self.shares.values() if vm is None or r.vm == vm)
        return sorted(records, key=lambda r: r.key)

    def find(self, ref: str) -> ShareRecord | None:
        """A share by key (``VM:TARGET``, the path in any spelling) or by name."""
        key = share_ref(ref)
        if key in self.shares:
            return self.shares[key]
        return next((r for r in self.shares.values() if r.name == ref), None)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def migrate(document: dict[str, Any]) -> dict[str, Any]:
    version = document.get("version")
    if not isinstance(version, int):
        raise StateError("state file has no version", hint="restore it from state.json.vmshare-bak")
    if version > STATE_VERSION:
        raise StateError(
            f"state file is version {version}; this vmshare understands up to {STATE_VERSION}",
            hint="upgrade vmshare",
        )
    while version < STATE_VERSION:
        if version not in MIGRATIONS:
            raise StateError(f"no migration from state version {version}", hint="upgrade vmshare")
        document = MIGRATIONS[version](document)
        version = document["version"]
    return document


class StateStore:
    def __init__(self, directory: Path | None = None, lock_timeout: float = 60) -> None:
        self.directory = directory or default_state_dir()
        self.path = self.directory / STATE_FILE
        self.lock_timeout = lock_timeout
        self._writer: StateWriter | None = None

    @property
    def writer(self) -> StateWriter:
        """The one writer of this store's journal records in this process (see statewriter)."""
        if self._writer is None:
            from vmshare.statewriter import StateWriter

            self._writer = StateWriter(self)
        return self._writer

    @contextmanager
    def vms_locked(self, vms: list[str] | set[str]) -> Iterator[None]:
        """Hold the lock of each VM a changing command works on, for the whole command."""
        from vmshare.locks import vms_locked

        private_dir(self.directory)
        with vms_locked(self.directory, vms, self.lock_timeout):
            yield

    def load(self) -> State:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State()
        try:
            return State.model_validate(migrate(json.loads(raw)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise StateError(
                f"state file {self.path} is damaged: {str(exc).splitlines()[0]}",
                hint=f"restore {self.path.name}.vmshare-bak from the same folder",
            ) from None

    def save(self, state: State) -> None:
        private_dir(self.directory)
        data = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        atomic_write(self.path, data.encode(), mode=0o600, keep_backup=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state file's lock: taken for each journal write (read, merge, save)."""
        import filelock  # only commands that change something pay for it

        private_dir(self.directory)
        lock = filelock.FileLock(str(self.directory / "lock"), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LockTimeout(
                f"another vmshare run still holds {lock.lock_file} after {self.lock_timeout:g} s",
                hint="wait for it to finish; if none is running, the lock frees itself",
            ) from None
        try:
            self._drop_stale_temp_files()
            yield
        finally:
            lock.release()

    def _drop_stale_temp_files(self) -> None:
        """Temp files of a state write that a crash interrupted (only a lock holder writes)."""
        for stale in self.directory.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
