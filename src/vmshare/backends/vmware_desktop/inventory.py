"""A VM found by its name in Workstation's or Fusion's inventory (the VM library), when the
settings give a name instead of a .vmx path.

The inventory is a file in the .vmx dictionary format (read with formats/vmx.py): each VM is
``vmlistN.config = "<path of its .vmx>"`` with ``vmlistN.DisplayName = "<name>"``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from vmshare.errors import NotFoundError, UsageError
from vmshare.formats import vmx as vmxfmt

# where Workstation (Linux, Windows) and Fusion (macOS) keep their inventory
INVENTORY_PATHS: dict[str, tuple[str, ...]] = {
    "linux": ("~/.vmware/inventory.vmls",),
    "darwin": ("~/Library/Application Support/VMware Fusion/vmInventory",),
    "win32": ("%APPDATA%/VMware/inventory.vmls",),
}
_ENTRY = re.compile(r"(vmlist\d+)\.displayname", re.IGNORECASE)


def inventory_files() -> list[Path]:
    paths = INVENTORY_PATHS.get(sys.platform, ())
    return [Path(os.path.expandvars(os.path.expanduser(p))) for p in paths]


def entries(path: Path) -> dict[str, list[str]]:
    """Display name -> the .vmx paths the inventory file lists under it."""
    try:
        parsed = vmxfmt.parse(path.read_bytes())
    except FileNotFoundError:
        return {}
    found: dict[str, list[str]] = {}
    for key in parsed.keys("vmlist"):
        match = _ENTRY.fullmatch(key)
        if not match:
            continue
        name, config = parsed.get(key), parsed.get(f"{match.group(1)}.config")
        if name and config:
            found.setdefault(name, []).append(config)
    return found


def find_vmx(name: str, files: list[Path] | None = None) -> Path:
    """The .vmx of the VM called ``name`` in the product's inventory."""
    files = inventory_files() if files is None else files
    listed: dict[str, list[str]] = {}
    for path in files:
        for display, configs in entries(path).items():
            listed.setdefault(display, []).extend(configs)
    configs = list(dict.fromkeys(listed.get(name, [])))
    if len(configs) == 1:
        return Path(configs[0])
    if configs:
        raise UsageError(
            f"{len(configs)} VMs are called {name!r} in the VMware inventory: "
            + ", ".join(configs),
            hint="set [vm.NAME] vmx to the path of the one you mean",
        )
    known = ", ".join(sorted(listed)) or "none"
    where = ", ".join(str(p) for p in files) or "no inventory file on this system"
    raise NotFoundError(
        f"no VM called {name!r} in the VMware inventory ({where}); VMs there: {known}",
        hint="set [vm.NAME] vmx to the VM's .vmx path, or its name as Workstation/Fusion shows it",
    )
