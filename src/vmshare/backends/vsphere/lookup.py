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


def vm_index(content: Any, root: Any, uuids: bool = True) -> list[VmRef]:
    """Every VM below ``root``: names, and BIOS/instance UUIDs when ``uuids`` (which doubles
    the time pyVmomi takes to parse the answer; a lookup by name does without)."""
    paths = INDEX_PROPERTIES if uuids else INDEX_PROPERTIES[:1]
    rows = _retrieve(content, root, vim.VirtualMachine, paths)
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


def inventory_paths(content: Any, entities: list[Any]) -> list[str]:
    """``datacenter/vm/folder/name`` of each entity: what FindByInventoryPath takes.

    One collector call walks up from all of them (``parent``, and ``parentVApp`` for a VM in a
    vApp, whose vApp stands in its folder's place); the root folder is not in a path. Names
    are joined as the server reports them: vSphere already escapes '/', '\\' and '%' in a name
    (``%2f``, ``%5c``, ``%25``), the form FindByInventoryPath expects. The collector leaves
    out unset properties (the root folder's parent), where reading them one by one would not.
    """
    if not entities:
        return []
    up = "inventory-up"
    again = [vmodl.query.PropertyCollector.SelectionSpec(name=up)]
    steps = [
        vmodl.query.PropertyCollector.TraversalSpec(
            name=up, type=vim.ManagedEntity, path="parent", skip=False, selectSet=again
        ),
        vmodl.query.PropertyCollector.TraversalSpec(
            name="inventory-vapp",
            type=vim.VirtualMachine,
            path="parentVApp",
            skip=False,
            selectSet=again,
        ),
    ]
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[
            vmodl.query.PropertyCollector.ObjectSpec(obj=entity, skip=False, selectSet=steps)
            for entity in entities
        ],
        propSet=[
            vmodl.query.PropertyCollector.PropertySpec(
                type=vim.ManagedEntity, pathSet=["name", "parent"]
            ),
            vmodl.query.PropertyCollector.PropertySpec(
                type=vim.VirtualMachine, pathSet=["name", "parent", "parentVApp"]
            ),
        ],
    )
    collector = content.propertyCollector
    result = collector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
    nodes: dict[str, dict[str, Any]] = {}
    while result is not None:
        for item in result.objects:
            nodes[item.obj._moId] = {prop.name: prop.val for prop in item.propSet}
        result = collector.ContinueRetrievePropertiesEx(result.token) if result.token else None
    paths = []
    for entity in entities:
        parts: list[str] = []
        node: dict[str, Any] | None = nodes.get(entity._moId)
        while node is not None:
            parent = node.get("parent") or node.get("parentVApp")
            if parent is None:  # the root folder
                break
            parts.append(escape(unescape(str(node.get("name", "")))))
            node = nodes.get(parent._moId)
        paths.append("/".join(reversed(parts)))
    return paths


def escape(name: str) -> str:
    """A name as vSphere stores it and an inventory path holds it."""
    return name.replace("%", "%25").replace("/", "%2f").replace("\\", "%5c")


def unescape(name: str) -> str:
    """A name as the vSphere client shows it."""
    return re.sub(
        r"%(25|2[fF]|5[cC])", lambda m: {"25": "%", "2f": "/", "5c": "\\"}[m[1].lower()], name
    )


def inventory_path(content: Any, entity: Any) -> str:
    return inventory_paths(content, [entity])[0]


def find_vm(
    content: Any, root: Any, ref: str, within: str | None = None
) -> tuple[VmRef | None, list[VmRef] | None]:
    """The VM ``ref`` names (an inventory path, a name as the server stores it or as its
    client shows it, or a BIOS/instance UUID), or None; and the index it searched (None when
    the server resolved an inventory path itself), so a caller can name the closest names
    without reading the index again.

    ``within`` (an inventory path prefix such as ``dc``) restricts an inventory path to one
    datacenter. An ambiguous name is a UsageError listing the inventory paths to choose from.
    """
    if "/" in ref and (within is None or ref.startswith(within + "/")):
        found = content.searchIndex.FindByInventoryPath(ref)
        if isinstance(found, vim.VirtualMachine):
            return VmRef(unescape(ref.rsplit("/", 1)[-1]), None, None, found), None
    # no path (or not one in this datacenter): a name, maybe with a '/' (stored as %2f)
    looks_like_uuid = bool(_UUID.match(ref))  # then the index carries UUIDs too (a name still wins)
    index = vm_index(content, root, uuids=looks_like_uuid)
    named = [vm for vm in index if ref in (vm.name, unescape(vm.name))]
    if len(named) > 1:
        paths = sorted(inventory_paths(content, [vm.obj for vm in named]))
        raise UsageError(
            f"{len(named)} VMs are named {ref!r}: " + ", ".join(paths),
            hint="name the VM by its inventory path (one of those) or its UUID",
        )
    if named:
        return named[0], index
    if looks_like_uuid:
        wanted = ref.replace("-", "").lower()
        matches = [
            vm
            for vm in index
            if any(u and u.replace("-", "").lower() == wanted for u in (vm.uuid, vm.instance_uuid))
        ]
        if len(matches) > 1:  # a cloned VM can keep its BIOS UUID
            paths = sorted(inventory_paths(content, [vm.obj for vm in matches]))
            raise UsageError(
                f"{len(matches)} VMs have the UUID {ref}: " + ", ".join(paths),
                hint="name the VM by its inventory path (one of those) or its instance UUID",
            )
        if matches:
            return matches[0], index
    return None, index


def datacenters(content: Any) -> list[dict[str, Any]]:
    """Name and VM folder of every datacenter (also those inside folders), in one call."""
    return _retrieve(content, content.rootFolder, vim.Datacenter, ["name", "vmFolder"])


def not_found(ref: str, server: str, names: list[str]) -> NotFoundError:
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.6)
    hint = (
        f"did you mean {', '.join(repr(n) for n in close)}?"
        if close
        else "name the VM as vSphere shows it, by inventory path, or by BIOS/instance UUID"
    )
    return NotFoundError(f"VM {ref!r} not found on {server}", hint=hint)
