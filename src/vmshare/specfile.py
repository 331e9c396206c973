"""Recording a share in a spec file (``vmshare add --save``), keeping the user's comments."""

from __future__ import annotations

from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from vmshare.errors import SpecError
from vmshare.fsutil import atomic_write
from vmshare.spec import SPEC_VERSION, ShareSpec, VmSpec, parse_spec


def with_share(text: str, share: ShareSpec, vm: VmSpec) -> str:
    """The spec text with ``share`` added (or replacing the one at the same VM:target)."""
    try:
        doc = tomlkit.parse(text) if text.strip() else tomlkit.document()
    except TOMLKitError as exc:
        raise SpecError(
            f"cannot update the spec file: not valid TOML: {exc}", hint="fix it"
        ) from None
    doc.setdefault("version", SPEC_VERSION)
    vms = doc.setdefault("vm", tomlkit.table(is_super_table=True))
    if vm.name not in vms:
        entry = tomlkit.table()
        entry["backend"] = vm.backend
        if vm.connection:
            entry["connection"] = vm.connection
        vms[vm.name] = entry
    shares = doc.get("share")
    if shares is None:
        shares = tomlkit.aot()
        doc["share"] = shares
    fields = share.model_dump(mode="json", exclude_defaults=True, exclude={"create"})
    fields.update({"source": str(share.source), "vm": share.vm, "target": share.target})
    if share.owner is not None:
        fields["owner"] = str(share.owner)
    table = tomlkit.table()
    for key in ("name", "source", "vm", "target"):
        if key in fields:
            table[key] = fields.pop(key)
    for key, value in fields.items():
        table[key] = value
    for index, existing in enumerate(shares):
        if existing.get("vm") == share.vm and existing.get("target") == share.target:
            shares[index] = table
            break
    else:
        shares.append(table)
    return tomlkit.dumps(doc)


def prepare_save(path: Path, share: ShareSpec, vm: VmSpec) -> str:
    """The new text for ``path``, validated before anything is written."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    new = with_share(text, share, vm)
    parse_spec(new, origin=str(path), base=path.resolve().parent)
    return new


def write_spec(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"), keep_backup=path.exists())
