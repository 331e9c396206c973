"""Read-only discovery: what exists on the host, in the hypervisor and in the guest right now.

Nothing here changes anything. Backends fill ``VmFacts``; the guest probe fills ``GuestFacts``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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
    guest: GuestFacts = GuestFacts()

    def without_share(self, tag: str, target: str) -> VmFacts:
        """These facts as they would be once the share behind ``tag``/``target`` is removed."""
        guest = self.guest.model_copy(
            update={
                "mounts": {k: v for k, v in self.guest.mounts.items() if k != target},
                "fstab_entries": {k: v for k, v in self.guest.fstab_entries.items() if k != tag},
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


class Facts(BaseModel):
    host_paths: dict[str, PathFact] = {}
    vms: dict[str, VmFacts] = {}


def probe_path(path: Path) -> PathFact:
    return PathFact(exists=path.exists(), is_dir=path.is_dir())


VmProbe = Callable[[str, list[str]], VmFacts]


def gather(spec: Spec, probe_vm: VmProbe) -> Facts:
    """Collect facts for every host path and VM the spec names.

    ``probe_vm(vm_name, guest_targets)`` asks the VM's backend (and its guest) what exists.
    """
    facts = Facts()
    for share in spec.share:
        facts.host_paths[str(share.source)] = probe_path(share.source)
    targets: dict[str, list[str]] = {}
    for share in spec.share:
        targets.setdefault(share.vm, []).append(share.target)
    for vm_name, vm_targets in targets.items():
        facts.vms[vm_name] = probe_vm(vm_name, vm_targets)
    return facts
