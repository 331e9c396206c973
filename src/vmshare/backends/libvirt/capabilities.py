"""What a libvirt VM offers for shares, from what its domain XML says, and the hints that name
libvirt's tools (no SDK needed: the planner's tests build libvirt facts with it)."""

from __future__ import annotations

import shlex

from vmshare.facts import Capabilities, DeviceCapability, Nat, Prerequisite
from vmshare.protocols.ninep import NINEP
from vmshare.protocols.virtiofs import VIRTIOFS

SHARED_MEMORY = "shared-memory"  # the prerequisite of virtiofs: memory shared with virtiofsd
# virtiofsd gets the host path inside "-o source=...", where ',' separates options and '\\'
# escapes: libvirt 9.0 passes both through unescaped, and the path arrives mangled.
VIRTIOFS_UNSAFE = ",\\"
# What ranks virtiofs first, quoted when auto picks it: benchmarks/defaults.py, interleaved with
# 9p as Lima mounts it (docs/performance.md, "Defaults by measurement").
VIRTIOFS_MEASURED = (
    "measured 9-16x faster than 9p with Lima's options on stat and tree walks; reads 0.5-1.2x "
    "and writes 0.55-0.64x its speed (two runs); benchmarks/defaults.py"
)


def capabilities(
    *,
    running: bool,
    acpi: bool,
    shared_memory_config: bool,
    shared_memory_live: bool,
    user_networking: bool,
) -> Capabilities:
    """virtiofs first (VIRTIOFS_MEASURED): it hot-plugs through PCI
    when QEMU runs with shared memory and ACPI. 9p never hot-plugs (nor unplugs) and is the one
    whose read-only QEMU enforces."""
    if not running:
        hotplug_off = None
    elif not shared_memory_live:
        hotplug_off = "shared memory backing takes effect only when QEMU restarts"
    elif not acpi:
        hotplug_off = "the VM has no ACPI, so PCI hot-plug is off"
    else:
        hotplug_off = None
    missing = [
        Prerequisite(
            name=SHARED_MEMORY,
            summary="add shared memory backing to the VM config",
            reason="virtiofs needs the guest's memory shared with virtiofsd",
        )
    ]
    virtiofs = DeviceCapability(
        protocol="virtiofs",
        semantics=VIRTIOFS.semantics,
        hotplug=hotplug_off is None,
        hotplug_off=hotplug_off,
        readonly_refused="libvirt refuses read-only virtiofs devices",
        unsafe_path_chars=VIRTIOFS_UNSAFE,
        unsafe_path_reason="libvirt hands it to virtiofsd inside an option list",
        missing=[] if shared_memory_config else missing,
        measured=VIRTIOFS_MEASURED,
    )
    ninep = DeviceCapability(
        protocol="9p",
        semantics=NINEP.semantics,
        hotplug=False,
        hotplug_off="9p devices cannot be hot-plugged",
        unplug=False,
        readonly_enforced=True,
    )
    nat = Nat(what="QEMU user networking", client="127.0.0.1") if user_networking else None
    return Capabilities(devices=[virtiofs, ninep], nat=nat)


def find_hint(connection: str) -> str:
    return f"check the name with `virsh -c {shlex.quote(connection)} list --all`"


def guest_hint(vm: str) -> str:
    return (
        "install and start qemu-guest-agent in the guest, or set "
        f'[vm.{vm}.guest] channel = "ssh" and ssh_host in the spec'
    )
