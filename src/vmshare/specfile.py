"""Recording a share in a spec file (``vmshare add --save``), keeping the user's comments."""

from __future__ import annotations

from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from vmshare.errors import SpecError
from vmshare.fsutil import atomic_write
from vmshare.spec import SPEC_VERSION, ShareSpec, VmSpec, parse_spec


def _parse(text: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text) if text.strip() else tomlkit.document()
    except TOMLKitError as exc:
        raise SpecError(
            f"cannot update the spec file: not valid TOML: {exc}", hint="fix it"
        ) from None


def portable_source(source: Path, base: Path | None, home: Path | None = None) -> str:
    """How a spec file records ``source`` so that it works on another machine: relative to the
    spec's folder when inside it, ``~/...`` when under the home folder, else absolute."""
    home = Path.home() if home is None else home
    if base is not None and source.is_relative_to(base):
        relative = source.relative_to(base)
        return "." if relative == Path() else f"./{relative.as_posix()}"
    if source.is_relative_to(home) and "$" not in str(source):
        return f"~/{source.relative_to(home).as_posix()}"
    return str(source)


def with_share(text: str, share: ShareSpec, vm: VmSpec, base: Path | None = None) -> str:
    """The spec text with ``share`` added (or replacing the one at the same VM:target); a
    source under ``base`` (the spec file's folder) is written relative to it."""
    doc = _parse(text)
    doc.setdefault("version", SPEC_VERSION)
    vms = doc.setdefault("vm", tomlkit.table(is_super_table=True))
    if vm.name not in vms:
        entry = tomlkit.table()
        entry["backend"] = vm.backend
        settings = vm.model_dump(mode="json", exclude_defaults=True, exclude={"name", "backend"})
        for key, value in settings.items():
            entry[key] = value
        vms[vm.name] = entry
    shares = doc.get("share")
    if shares is None:
        shares = tomlkit.aot()
        doc["share"] = shares
    fields = share.model_dump(mode="json", exclude_defaults=True, exclude={"create"})
    fields.update(
        {"source": portable_source(share.source, base), "vm": share.vm, "target": share.target}
    )
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
    base = path.resolve().parent
    new = with_share(text, share, vm, base)
    parse_spec(new, origin=str(path), base=base)
    return new


def without_shares(text: str, keys: list[str]) -> tuple[str, int]:
    """The spec text without the shares at these VM:target keys, and how many it dropped."""
    doc = _parse(text)
    shares = doc.get("share")
    if shares is None:
        return text, 0
    wanted = {tuple(key.split(":", 1)) for key in keys}
    kept = [s for s in shares if (s.get("vm"), _normal(s.get("target"))) not in wanted]
    dropped = len(shares) - len(kept)
    if dropped:
        while len(shares):
            shares.pop(0)  # in place: the document keeps its comments and layout
        for entry in kept:
            shares.append(entry)
        if not kept:
            del doc["share"]
    return tomlkit.dumps(doc), dropped


def _normal(target: object) -> object:
    from vmshare.spec import normal_guest_path

    try:
        return normal_guest_path(target) if isinstance(target, str) else target
    except ValueError:
        return target


def write_spec(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"), keep_backup=path.exists())
