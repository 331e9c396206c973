"""Read-only discovery: what exists on the host, in the hypervisor and in the guest right now.

Nothing here changes anything. Backends fill ``VmFacts``; the guest probe fills ``GuestFacts``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, Field

from vmshare.spec import Spec

Scope = Literal["running", "persistent"]
"""Where a hypervisor share device lives: in the running VM (libvirt live, VirtualBox transient,
Workstation through vmrun) or in the VM's stored configuration (libvirt config, VirtualBox
permanent, the .vmx file)."""


class FsDevice(BaseModel):
    """A filesystem device the hypervisor hands to the guest."""

    tag: str
    source: str
    protocol: str  # the device protocol: virtiofs, 9p, vboxsf, hgfs
    readonly: bool = False


class Prerequisite(BaseModel):
    """Something the VM lacks before a device protocol can work; ``prepare`` adds it."""

    name: str  # what Backend.prepare(prerequisite=...) is asked for, e.g. "shared-memory"
    summary: str  # the step's line in the plan
    reason: str
    # the prerequisite that puts it back when the share is removed (Backend.prepare), if any
    undo: str | None = None
    undo_summary: str = ""


class DeviceCapability(BaseModel):
    """A device share protocol this VM offers on its backend."""

    protocol: str
    semantics: str  # the POSIX behaviour of the share, as measured on this backend
    hotplug: bool = True  # a device can be added to the running VM now
    hotplug_off: str | None = None  # why not, when it cannot: the restart reason
    unplug: bool = True  # a device leaves the running VM without a restart
    readonly_enforced: bool = False  # the hypervisor itself refuses writes to read-only shares
    readonly_refused: str | None = None  # why the hypervisor refuses read-only devices, if it does
    unsafe_path_chars: str = ""  # host-path characters the device cannot carry
    unsafe_path_reason: str = ""
    missing: list[Prerequisite] = []
    # a running VM gets the device in its config only when the share persists; otherwise only
    # the running VM has it (VirtualBox transient folders)
    config_follows_persist: bool = False
    # why the VM's config (the persistent scope) changes only while the VM is off, when it does
    # (VirtualBox through VBoxManage: the write lock): a running VM then gets the device in its
    # config only, with the VM stopped for it and started again (Backend.needs_off says when)
    config_needs_off: str | None = None
    # the words for each scope in the plan ("transient folder", "permanent folder")
    scope_words: dict[str, str] = {}
    attach_note: str | None = None  # said with every attach (e.g. a setting that applies)
    measured: str | None = None  # the benchmark figure behind its rank, said when auto picks it
    # what the detach needs to put the VM's config back as it was before the attach (the .vmx's
    # sharedFolder.maxNum): given to Backend.detach_share with the tag
    detach_args: dict[str, str] = {}


class Nat(BaseModel):
    """The VM sits behind its hypervisor's NAT: host servers see it at one fixed address."""

    what: str  # "QEMU user networking", "VirtualBox NAT"
    client: str  # the address the host's servers see the guest connect from
    host: str | None = None  # the address the guest dials to reach the host, when fixed


class Capabilities(BaseModel):
    """What this VM offers on its backend, as the planner needs it to choose a protocol."""

    devices: list[DeviceCapability] = []  # best first
    network: list[str] = ["nfs", "smb"]  # network protocols this backend and guest can use
    guest_os: Literal["linux", "windows"] = "linux"
    nat: Nat | None = None
    no_device_reason: str | None = None  # why this VM offers no device share, when it could
    # the backend keeps vmshare's record of a share on the VM itself (record_share/forget_share),
    # where another workstation or a CI job reads it; ``record_where`` says where, in the
    # backend's words, with ``{tag}`` for the share's tag
    records: bool = False
    record_where: str = "the VM's configuration"
    # the OS of the host that serves this VM's network shares: "windows" for Hyper-V, whose
    # host layer (Backend.host) is a Windows machine reached through PowerShell
    host_os: Literal["posix", "windows"] = "posix"

    def device(self, protocol: str) -> DeviceCapability | None:
        return next((d for d in self.devices if d.protocol == protocol), None)


class GuestMount(BaseModel):
    source: str
    target: str
    fstype: str
    options: list[str]


class GuestFacts(BaseModel):
    reachable: bool = False
    channel: str | None = None
    error: str | None = None
    hint: str | None = None  # what the channel's error said to do (e.g. resume a paused VM)
    mounts: dict[str, GuestMount] = {}  # by mount point; the last mount over a point wins
    fstab_entries: dict[str, str] = {}  # vmshare entry id -> fstab line
    existing_dirs: list[str] = []
    gateway: str | None = None  # the guest's default route: how it reaches the host
    # the HGFS clients the guest has: "vmhgfs-fuse" (open-vm-tools 10+) and/or "vmhgfs" (the old
    # kernel module, found by its mount program mount.vmhgfs)
    hgfs_clients: list[str] = []


class VmFacts(BaseModel):
    name: str
    backend: str
    connection: str
    exists: bool = False
    uuid: str | None = None
    running: bool = False
    capabilities: Capabilities = Capabilities()
    persistent_devices: dict[str, FsDevice] = {}  # share devices in the VM's configuration
    running_devices: dict[str, FsDevice] = {}  # share devices in the running VM
    addresses: list[str] = []  # the guest's own addresses, as its guest tools report them
    address_reason: str | None = None  # why addresses[0] is the one the host should see
    guest_tools: str | None = None  # the guest tools' status and version, as reported
    host_address: str | None = None  # the address the guest dials, when the backend knows it
    host_shares: dict[str, str] = {}  # a Windows host's SMB shares vmshare made: name -> folder
    guest: GuestFacts = GuestFacts()
    records: dict[str, dict[str, Any]] = {}  # share tag -> vmshare's record the VM holds
    # what the user should know about how vmshare reaches this VM (TLS checks off, a password
    # a tool puts on its command line...): the plan prints each once, as a note
    warnings: list[str] = []
    # the backend's words for finding a VM and for reaching inside it, for hints
    find_hint: str = "check the VM's name"
    guest_hint: str = "make sure the VM's guest tools run, or configure ssh access"

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
                "persistent_devices": {
                    k: v for k, v in self.persistent_devices.items() if k != tag
                },
                "running_devices": {k: v for k, v in self.running_devices.items() if k != tag},
                "records": {k: v for k, v in self.records.items() if k != tag},
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
    host_name: str = Field(default_factory=socket.gethostname)  # this machine, for VM records


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
    try:  # POSIX only: imported here so that Windows can load this module
        import grp
        import pwd
    except ImportError:
        return  # Windows: host folders have no uid/gid names to show

    owners = [(p.uid, p.gid) for p in facts.host_paths.values() if p.exists]
    owners += [(s.owner.uid, s.owner.gid) for s in spec.share if s.owner is not None]
    for uid, gid in owners:
        with contextlib.suppress(KeyError):
            facts.user_names[uid] = pwd.getpwuid(uid).pw_name
        with contextlib.suppress(KeyError):
            facts.group_names[gid] = grp.getgrgid(gid).gr_name


VmProbe = Callable[[str, list[str]], VmFacts]


def gather(spec: Spec, probe_vm: VmProbe) -> Facts:
    """Collect facts for every host path and VM the spec names.

    ``probe_vm(vm_name, guest_targets)`` asks the VM's backend (and its guest) what exists. The
    exports of the host's file servers are probed afterwards, for the protocols chosen from
    these facts.
    """
    facts = Facts()
    for share in spec.share:
        facts.host_paths[str(share.source)] = probe_path(share.source)
    _names(facts, spec)
    targets: dict[str, list[str]] = {}
    for share in spec.share:
        targets.setdefault(share.vm, []).append(share.target)
    for vm_name, vm_targets in targets.items():
        facts.vms[vm_name] = probe_vm(vm_name, vm_targets)
    return facts
