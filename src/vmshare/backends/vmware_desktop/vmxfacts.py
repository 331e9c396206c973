"""What a .vmx file says about shares: vmshare's HGFS folders, whether shared folders are on,
the guest OS; and the lines a change to it would write, for plans."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from vmshare.facts import FsDevice
from vmshare.formats import vmx as vmxfmt

HGFS_OFF = "isolation.tools.hgfs.disable"


def read(path: Path) -> vmxfmt.VmxFile | None:
    """The parsed .vmx, or None when there is no such file (read without the edit lock: VMware
    may hold it, and reading changes nothing)."""
    try:
        return vmxfmt.parse(path.read_bytes())
    except FileNotFoundError:
        return None


def devices(vmx: vmxfmt.VmxFile) -> dict[str, FsDevice]:
    """vmshare's own shared folders (named by ``share_name``/``mount_tag``), by name. Folders the
    user made are never vmshare's to change, so they are not listed."""
    found = {}
    for folder in vmxfmt.shared_folders(vmx).values():
        name = folder.guest_name
        if name and folder.present and vmxfmt.SHARE_NAME.fullmatch(name):
            found[name] = FsDevice(
                tag=name, source=folder.host_path or "", protocol="hgfs", readonly=folder.readonly
            )
    return found


def hgfs_enabled(vmx: vmxfmt.VmxFile) -> bool:
    value = vmx.get(HGFS_OFF)
    return value is None or value.strip().lower() not in ("true", "yes", "on", "1")


def guest_os(vmx: vmxfmt.VmxFile) -> str:
    """VMware's guestOS key ("ubuntu-64", "windows9-64", "darwin19-64"...)."""
    return (vmx.get("guestOS") or "").strip().lower()


def changed_lines(vmx: vmxfmt.VmxFile, change: Callable[[vmxfmt.VmxFile], object]) -> list[str]:
    """The key lines ``change`` would add, set or remove in ``vmx``, as the plan shows them."""
    after = copy.deepcopy(vmx)
    change(after)
    keys = list(dict.fromkeys([*vmx.keys(), *after.keys()]))
    lines = []
    for key in keys:
        old, new = vmx.get(key), after.get(key)
        if old == new:
            continue
        if new is None:
            lines.append(f".vmx: remove {key}")
        else:
            lines.append(f'.vmx: {key} = "{vmxfmt.escape(new.encode()).decode(errors="replace")}"')
    return lines
