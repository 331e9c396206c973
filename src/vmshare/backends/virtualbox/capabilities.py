"""What a VirtualBox VM offers for shares, from what the adapter read: vboxsf when Guest
Additions run in it (else nfs/smb, with the reason), its guest addresses, NAT."""

from __future__ import annotations

import re

from vmshare.backends.virtualbox.adapter import (
    Adapter,
    Folder,
    Machine,
)
from vmshare.facts import Capabilities, DeviceCapability, FsDevice, Nat
from vmshare.protocols.vboxsf import VBOXSF

GA_VERSION = "/VirtualBox/GuestAdd/Version"
OS_PRODUCT = "/VirtualBox/GuestInfo/OS/Product"  # e.g. "Linux", "Windows 10"
_NET_IP = re.compile(r"/VirtualBox/GuestInfo/Net/(\d+)/V4/IP")
SYMLINKS_AT_START = "symlink creation (symlinks = true) takes effect only when the VM starts"
# VBoxManage sharedfolder add/remove without --transient takes LockType_Write, which VirtualBox
# refuses while the VM's process holds the machine (VirtualBox 7.0's VBoxManageMisc.cpp), though
# the API itself allows the change on a running VM's session machine (MachineImpl.cpp)
PERMANENT_ADD_OFF = (
    "VBoxManage adds a permanent folder only to a stopped VM (it needs the VM's write lock)"
)
PERMANENT_ADD_INSTEAD = (
    'set adapter = "sdk" (VirtualBox\'s API adds it while the VM runs), or pass --no-persist '
    "for a transient folder only"
)
PERMANENT_REMOVE_OFF = (
    "VBoxManage removes a permanent folder only from a stopped VM (it needs the VM's write lock)"
)
PERMANENT_REMOVE_INSTEAD = 'or set adapter = "sdk" (VirtualBox\'s API removes it while the VM runs)'
SYMLINKS_NOTE = (
    "symlink creation {state} for this folder (VBoxInternal2/SharedFoldersEnableSymlinksCreate, "
    "set before the folder is added; it lets the guest create symlinks on the host, "
    "[vm.NAME] symlinks = {setting})"
)


def guest_additions(machine: Machine) -> str | None:
    return machine.properties.get(GA_VERSION) or None


def addresses(machine: Machine) -> list[str]:
    """The guest's IPv4 addresses, by network adapter number."""
    found = []
    for key, value in machine.properties.items():
        match = _NET_IP.fullmatch(key)
        if match and value:
            found.append((int(match.group(1)), value))
    return [value for _, value in sorted(found)]


def devices(machine: Machine) -> tuple[dict[str, FsDevice], dict[str, FsDevice]]:
    """(permanent folders, folders of the running VM): a running VM has its permanent folders
    too, and a transient folder of the same name overrides its permanent one."""
    permanent = {f.name: device(f) for f in machine.folders if not f.transient}
    live = dict(permanent) if machine.running else {}
    live.update({f.name: device(f) for f in machine.folders if f.transient})
    return permanent, live


def device(folder: Folder) -> FsDevice:
    return FsDevice(
        tag=folder.name, source=folder.host_path, protocol="vboxsf", readonly=not folder.writable
    )


def capabilities(machine: Machine, adapter: Adapter, vm: str, symlinks: bool) -> Capabilities:
    nat = Nat(what="VirtualBox NAT", client="127.0.0.1", host="10.0.2.2") if machine.nat else None
    if machine.properties.get(OS_PRODUCT, "").startswith("Windows"):
        return Capabilities(
            devices=[],
            network=["smb"],
            guest_os="windows",
            nat=nat,
            no_device_reason="vmshare mounts vboxsf in Linux guests only",
        )
    if guest_additions(machine) is None:
        return Capabilities(
            devices=[],
            nat=nat,
            no_device_reason=(
                f"VM {vm!r} reports no Guest Additions ({GA_VERSION} is unset), and vboxsf "
                "needs them"
            ),
        )
    vboxsf = DeviceCapability(
        protocol="vboxsf",
        semantics=VBOXSF.semantics,
        # a transient folder joins the running VM at once, unless symlink creation must be
        # allowed for it: VirtualBox reads that when the VM starts
        hotplug=not (symlinks and machine.running),
        hotplug_off=SYMLINKS_AT_START if symlinks and machine.running else None,
        unplug=True,
        readonly_enforced=True,  # VirtualBox refuses writes to a folder that is not writable
        config_follows_persist=True,
        config_needs_off=None if adapter.permanent_while_running else PERMANENT_ADD_OFF,
        scope_words={"running": "transient folder", "persistent": "permanent folder"},
        attach_note=SYMLINKS_NOTE.format(
            state="allowed" if symlinks else "stays off", setting=str(symlinks).lower()
        ),
    )
    return Capabilities(devices=[vboxsf], nat=nat)
