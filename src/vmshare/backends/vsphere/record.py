"""vmshare's record on the VM: extraConfig keys ``guestinfo.vmshare.<tag>`` holding a JSON line
that says which share vmshare made, so another workstation or a CI job sees it (and, as guestinfo,
the guest too: ``vmware-rpctool "info-get guestinfo.vmshare.<tag>"``).

Real vSphere replaces a key's value and deletes a key set to ""; the simulator appends duplicates
and cannot delete. So the last value of a key wins, and an empty value means deleted.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyVmomi import vim, vmodl

PREFIX = "guestinfo.vmshare."
_TAG = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def key_for(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise ValueError(f"not a share tag: {tag!r}")
    return PREFIX + tag


def records(extra_config: list[Any] | None) -> dict[str, dict[str, Any]]:
    """tag -> the share's record, from a VM's ``config.extraConfig`` (the last value wins)."""
    latest: dict[str, str] = {}
    for option in extra_config or []:
        key = str(getattr(option, "key", ""))
        if key.startswith(PREFIX):
            latest[key.removeprefix(PREFIX)] = str(getattr(option, "value", "") or "")
    found: dict[str, dict[str, Any]] = {}
    for tag, value in latest.items():
        if not value:
            continue  # deleted
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            continue  # not vmshare's: leave it alone
        if isinstance(parsed, dict):
            found[tag] = parsed
    return found


def extra_config(content: Any, vm: Any) -> list[Any]:
    """The VM's ``config.extraConfig``, alone, in one collector call (the VM's other facts are
    read apart; this is only read for the VM found)."""
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=vm, skip=False)],
        propSet=[
            vmodl.query.PropertyCollector.PropertySpec(
                type=vim.VirtualMachine, pathSet=["config.extraConfig"]
            )
        ],
    )
    result = content.propertyCollector.RetrievePropertiesEx(
        [spec], vmodl.query.PropertyCollector.RetrieveOptions()
    )
    if result is None or not result.objects:
        return []
    return [option for prop in result.objects[0].propSet for option in (prop.val or [])]


def spec_setting(tag: str, record: dict[str, Any] | None) -> Any:
    """A ReconfigVM spec that sets (or, with None, deletes) the record of ``tag``."""
    value = "" if record is None else json.dumps(record, sort_keys=True, separators=(",", ":"))
    option = vim.option.OptionValue(key=key_for(tag), value=value)
    return vim.vm.ConfigSpec(extraConfig=[option])
