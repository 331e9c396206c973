"""fstab and /proc/mounts text: escaping, parsing, and vmshare's marked block.

vmshare owns only the lines between its BEGIN and END markers; every other byte of the file is
kept as it was. Each entry is preceded by an ``# vmshare:<id>`` comment naming it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

BEGIN = "# BEGIN vmshare (managed by vmshare; `vmshare remove` takes these entries out)"
END = "# END vmshare"
ENTRY_MARK = "# vmshare:"
_ESCAPES = {"\\": "\\134", " ": "\\040", "\t": "\\011", "\n": "\\012"}
_OCTAL = re.compile(r"\\([0-7]{3})")
_ENTRY_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")


def escape(field: str) -> str:
    """Escape one fstab field the way getmntent(3) and libmount decode it."""
    if "\x00" in field:
        raise ValueError("an fstab field cannot hold NUL")
    return "".join(_ESCAPES.get(ch, ch) for ch in field)


def unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class MountEntry:
    source: str
    target: str
    fstype: str
    options: tuple[str, ...]


def render_entry(entry: MountEntry) -> str:
    if not entry.options or any(not o or re.search(r"[\s,]", o) for o in entry.options):
        raise ValueError(f"invalid mount options {entry.options!r}")
    fields = [escape(entry.source), escape(entry.target), escape(entry.fstype)]
    return " ".join([*fields, ",".join(entry.options), "0", "0"])


def parse_table(text: str) -> list[MountEntry]:
    """Parse fstab or /proc/mounts text (comments and blank lines skipped)."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#"):
            continue
        options = tuple(fields[3].split(",")) if len(fields) > 3 else ("defaults",)
        entries.append(MountEntry(unescape(fields[0]), unescape(fields[1]), fields[2], options))
    return entries


def _split(text: str) -> tuple[list[str], list[str], list[str]]:
    """(lines before the block, lines inside it, lines after it)."""
    lines = text.splitlines()
    try:
        start = lines.index(BEGIN)
        end = lines.index(END, start)
    except ValueError:
        return lines, [], []
    return lines[:start], lines[start + 1 : end], lines[end + 1 :]


def block_entries(text: str) -> dict[str, str]:
    """vmshare's entries in an fstab text: entry id -> fstab line."""
    _, inside, _ = _split(text)
    entries: dict[str, str] = {}
    for mark, line in itertools.pairwise(inside):
        if mark.startswith(ENTRY_MARK) and not line.startswith("#"):
            entries[mark[len(ENTRY_MARK) :]] = line
    return entries


def _join(before: list[str], entries: dict[str, str], after: list[str]) -> str:
    block: list[str] = []
    if entries:
        block = [BEGIN]
        for entry_id, line in entries.items():
            block += [ENTRY_MARK + entry_id, line]
        block.append(END)
    lines = before + block + after
    return "\n".join(lines) + "\n" if lines else ""


def with_entry(text: str, entry_id: str, line: str) -> str:
    """``text`` with the vmshare entry ``entry_id`` set to ``line`` (added or replaced)."""
    if not _ENTRY_ID.fullmatch(entry_id) or "\n" in line or line.startswith("#"):
        raise ValueError("invalid fstab entry")
    before, _, after = _split(text)
    entries = block_entries(text)
    entries[entry_id] = line
    return _join(before, entries, after)


def without_entry(text: str, entry_id: str) -> str:
    """``text`` without the vmshare entry ``entry_id``; the block goes once it is empty."""
    entries = block_entries(text)
    if entry_id not in entries:
        return text
    before, _, after = _split(text)
    del entries[entry_id]
    return _join(before, entries, after)
