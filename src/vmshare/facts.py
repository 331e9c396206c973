"""Read-only discovery: what exists on the host, in the hypervisor and in the guest right now.

Nothing here changes anything. Backends fill ``VmFacts``; the guest probe fills ``GuestFacts``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel

from vmshare.spec import Spec

Driver = Literal["virtiofs", "9p"]


class FsDevice(BaseModel):
    """A filesystem device the hypervisor hands to the guest."""

    tag: str
    source: str
    driver: Driver
    readonly: bool = False


class GuestMount(BaseModel):
    source: str
    target: str
    fstype: str
    options: list[str]


class GuestFacts(BaseModel):
    reachable: bool = False
    channel: str | None = None
    error: str | None = None
    mounts: dict[str, GuestMount] = {}  # by mount point; the last mount over a point wins
    fstab_entries: dict[str, str] = {}  # vmshare entry id -> fstab line
    existing_dirs: list[str] = []
    gateway: str | None = None  # the guest's default route: how it reaches the host


class VmFacts(BaseModel):
    name: str
    backend: str
    connection: str
    exists: bool = False
    uuid: str | None = None
    running: bool = False
    acpi: bool = False
    shared_memory_config: bool = False
    shared_memory_live: bool = False
    config_devices: dict[str, FsDevice] = {}
    live_devices: dict[str, FsDevice] = {}
    addresses: list[str] = []  # the guest's own addresses, as its agent reports them
    user_networking: bool = False  # QEMU user (slirp) networking: seen by the host as 127.0.0.1
    guest_os: Literal["linux", "windows"] | None = None  # as the backend knows it; None: unknown
    # the backend's words for hints shared code gives: how to look the VM up, and what the
    # guest needs for the backend's own guest channel
    lookup_hint: str | None = None
    guest_channel_hint: str | None = None

    @property
    def lookup(self) -> str:
        return self.lookup_hint or f"check the VM's name and the connection {self.connection}"

    @property
    def guest_channel_needs(self) -> str:
        return self.guest_channel_hint or "start the guest's agent for this hypervisor"

    guest: GuestFacts = GuestFacts()

    def without_share(self, tag: str, target: str, dirs: list[str] | None = None) -> VmFacts:
        """These facts as they would be once the share behind ``tag``/``target`` is removed,
        with the guest folders ``dirs`` that its removal deletes."""
        gone = set(dirs or [])
        guest = self.guest.model_copy(
            update={
                "mounts": {k: v for k, v in self.guest.mounts.items() if k != target},
                "fstab_entries": {k: v for k, v in self.guest.fstab_entries.items() if k != tag},
                "existing_dirs": [d for d in self.guest.existing_dirs if d not in gone],
            }
        )
        return self.model_copy(
            update={
                "config_devices": {k: v for k, v in self.config_devices.items() if k != tag},
                "live_devices": {k: v for k, v in self.live_devices.items() if k != tag},
                "guest": guest,
            }
        )


class PathFact(BaseModel):
    exists: bool
    is_dir: bool
    uid: int = 0
    gid: int = 0
    mode: int = 0o755
    missing_parents: list[str] = []  # folders a mkdir -p of a missing path creates, deepest first


def ancestors(path: str) -> list[str]:
    """The folders above an absolute path, nearest first, without the root."""
    return [str(p) for p in PurePosixPath(path).parents if str(p) != "/"]


def missing_parents(path: str, existing: list[str]) -> list[str]:
    """The folders above ``path`` that a mkdir -p creates, deepest first."""
    missing: list[str] = []
    for parent in ancestors(path):
        if parent in existing:
            break
        missing.append(parent)
    return missing


class Facts(BaseModel):
    host_paths: dict[str, PathFact] = {}
    vms: dict[str, VmFacts] = {}
    exports: dict[str, dict[str, str]] = {}  # "nfs"/"smb" -> vmshare entry id -> entry text
    user_names: dict[int, str] = {}  # host uid -> user name (Samba's force user takes names)
    group_names: dict[int, str] = {}


def probe_path(path: Path) -> PathFact:
    try:
        info = path.stat()
    except OSError:
        existing = [p for p in ancestors(str(path)) if Path(p).is_dir()]
        return PathFact(
            exists=False, is_dir=False, missing_parents=missing_parents(str(path), existing)
        )
    return PathFact(
        exists=True,
        is_dir=path.is_dir(),
        uid=info.st_uid,
        gid=info.st_gid,
        mode=info.st_mode & 0o7777,
    )


def _names(facts: Facts, spec: Spec) -> None:
    import grp  # POSIX only: imported here so that Windows can load this module
    import pwd

    owners = [(p.uid, p.gid) for p in facts.host_paths.values() if p.exists]
    owners += [(s.owner.uid, s.owner.gid) for s in spec.share if s.owner is not None]
    for uid, gid in owners:
        with contextlib.suppress(KeyError):
            facts.user_names[uid] = pwd.getpwuid(uid).pw_name
        with contextlib.suppress(KeyError):
            facts.group_names[gid] = grp.getgrgid(gid).gr_name


VmProbe = Callable[[str, list[str]], VmFacts]
ExportProbe = Callable[[str], dict[str, str]]


def gather(spec: Spec, probe_vm: VmProbe, probe_exports: ExportProbe | None = None) -> Facts:
    """Collect facts for every host path, export and VM the spec names.

    ``probe_vm(vm_name, guest_targets)`` asks the VM's backend (and its guest) what exists;
    ``probe_exports(protocol)`` reads vmshare's entries in the host's nfs or smb server.
    """
    facts = Facts()
    for share in spec.share:
        facts.host_paths[str(share.source)] = probe_path(share.source)
    _names(facts, spec)
    if probe_exports is not None:
        for protocol in sorted({s.protocol for s in spec.share} & {"nfs", "smb"}):
            facts.exports[protocol] = probe_exports(protocol)
    targets: dict[str, list[str]] = {}
    for share in spec.share:
        targets.setdefault(share.vm, []).append(share.target)
    for vm_name, vm_targets in targets.items():
        facts.vms[vm_name] = probe_vm(vm_name, vm_targets)
    return facts
