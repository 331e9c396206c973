"""Finding a VM on a vSphere server: by name, inventory path or BIOS/instance UUID.

One ContainerView and one PropertyCollector call fetch just the names and UUIDs of every VM
(no per-VM round trip), so a lookup stays fast on big inventories; the full properties are then
read for the one VM found.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from vmshare.errors import NotFoundError, UsageError

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
INDEX_PROPERTIES = ["name", "config.uuid", "config.instanceUuid"]
VM_PROPERTIES = [
    "name",
    "config.uuid",
    "config.guestId",
    "runtime.powerState",
    "guest.toolsRunningStatus",
    "guest.toolsVersion",
    "guest.guestFamily",
    "guest.ipAddress",
    "guest.net",
]


@dataclass(frozen=True)
class VmRef:
    name: str
    uuid: str | None
    instance_uuid: str | None
    obj: Any  # vim.VirtualMachine


def _retrieve(content: Any, root: Any, kind: type, paths: list[str]) -> list[dict[str, Any]]:
    """Properties ``paths`` of every object of ``kind`` below ``root``, in one collector call
    (plus continuation pages)."""
    view = content.viewManager.CreateContainerView(root, [kind], True)
    try:
        traverse = vmodl.query.PropertyCollector.TraversalSpec(
            name="view", type=vim.view.ContainerView, path="view", skip=False
        )
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[
                vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traverse])
            ],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths)],
        )
        collector = content.propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions()
        result = collector.RetrievePropertiesEx([spec], options)
        rows: list[dict[str, Any]] = []
        while result is not None:
            for item in result.objects:
                row = {prop.name: prop.val for prop in item.propSet}
                row["_obj"] = item.obj
                rows.append(row)
            token = result.token
            result = collector.ContinueRetrievePropertiesEx(token) if token else None
        return rows
    finally:
        view.Destroy()


def vm_index(content: Any, root: Any) -> list[VmRef]:
    rows = _retrieve(content, root, vim.VirtualMachine, INDEX_PROPERTIES)
    return [
        VmRef(
            name=str(row.get("name", "")),
            uuid=row.get("config.uuid"),
            instance_uuid=row.get("config.instanceUuid"),
            obj=row["_obj"],
        )
        for row in rows
    ]


def vm_properties(content: Any, vm: Any) -> dict[str, Any]:
    """The facts' properties of one VM, in one collector call."""
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=vm, skip=False)],
        propSet=[
            vmodl.query.PropertyCollector.PropertySpec(
                type=vim.VirtualMachine, pathSet=VM_PROPERTIES
            )
        ],
    )
    result = content.propertyCollector.RetrievePropertiesEx(
        [spec], vmodl.query.PropertyCollector.RetrieveOptions()
    )
    if result is None or not result.objects:
        return {}
    return {prop.name: prop.val for prop in result.objects[0].propSet}


def inventory_path(vm: Any) -> str:
    """``datacenter/vm/folder/name``: what FindByInventoryPath takes."""
    parts: list[str] = []
    node = vm
    while node is not None and node.parent is not None:  # the root folder is not in the path
        parts.append(str(node.name))
        node = node.parent
    return "/".join(reversed(parts))


def find_vm(content: Any, root: Any, ref: str) -> VmRef | None:
    """The VM ``ref`` names (a name, an inventory path with '/', or a UUID); None if none.

    An ambiguous name is a UsageError listing the inventory paths to choose from.
    """
    if "/" in ref:
        found = content.searchIndex.FindByInventoryPath(ref)
        if isinstance(found, vim.VirtualMachine):
            return VmRef(found.name, None, None, found)
        return None
    index = vm_index(content, root)
    named = [vm for vm in index if vm.name == ref]
    if len(named) > 1:
        paths = sorted(inventory_path(vm.obj) for vm in named)
        raise UsageError(
            f"{len(named)} VMs are named {ref!r}: " + ", ".join(paths),
            hint="name the VM by its inventory path (one of those) or its UUID",
        )
    if named:
        return named[0]
    if _UUID.match(ref):
        wanted = ref.replace("-", "").lower()
        for vm in index:
            for uuid in (vm.uuid, vm.instance_uuid):
                if uuid and uuid.replace("-", "").lower() == wanted:
                    return vm
    return None


def not_found(ref: str, server: str, names: list[str]) -> NotFoundError:
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.6)
    hint = (
        f"did you mean {', '.join(repr(n) for n in close)}?"
        if close
        else "name the VM as vSphere shows it, by inventory path, or by BIOS/instance UUID"
    )
    return NotFoundError(f"VM {ref!r} not found on {server}", hint=hint)
