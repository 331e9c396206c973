"""fstab and /proc/mounts text: escaping, parsing, and vmshare's entries (see ownedblock)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmshare.formats import ownedblock

_ESCAPES = {"\\": "\\134", " ": "\\040", "\t": "\\011", "\n": "\\012"}
_OCTAL = re.compile(r"\\([0-7]{3})")
# libmount and getmntent split fields at blanks only; str.split() would also split at U+00A0...
_BLANKS = re.compile(r"[ \t]+")


def escape(field: str) -> str:
    """Escape one fstab field the way getmntent(3) and libmount decode it."""
    if "\x00" in field or not field:
        raise ValueError("an fstab field cannot be empty or hold NUL")
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
    # an option is never escaped: a reader decodes \ooo in it too, so \054 would be a comma
    if not entry.options or any(
        not o or re.search(r"[\s,\\\x00-\x1f\x7f]", o) for o in entry.options
    ):
        raise ValueError(f"invalid mount options {entry.options!r}")
    fields = [escape(entry.source), escape(entry.target), escape(entry.fstype)]
    return " ".join([*fields, ",".join(entry.options), "0", "0"])


def parse_table(text: str) -> list[MountEntry]:
    """Parse fstab or /proc/mounts text (comments and blank lines skipped)."""
    entries = []
    for line in ownedblock.lines_of(text):
        fields = _BLANKS.split(line.strip(" \t"))
        if len(fields) < 3 or fields[0].startswith("#"):
            continue
        options = tuple(fields[3].split(",")) if len(fields) > 3 else ("defaults",)
        entries.append(MountEntry(unescape(fields[0]), unescape(fields[1]), fields[2], options))
    return entries


def block_entries(text: str) -> dict[str, str]:
    """vmshare's fstab entries: entry id -> fstab line."""
    return ownedblock.entries(text)


def with_entry(text: str, entry_id: str, line: str) -> str:
    """``text`` with the vmshare entry ``entry_id`` set to ``line`` (added or replaced)."""
    if "\n" in line or line.startswith("#"):
        raise ValueError("an fstab entry is one line, not a comment")
    return ownedblock.with_entry(text, entry_id, line)


def without_entry(text: str, entry_id: str) -> str:
    return ownedblock.without_entry(text, entry_id)
