"""vmshare's marked block inside a text file it shares with others (fstab, exports, smb.conf...).

vmshare owns only the lines between BEGIN and END; every other byte stays as it was. Inside, each
entry starts with a ``# vmshare:<id>`` line and runs to the next marker. All the formats vmshare
edits take ``#`` comments.
"""

from __future__ import annotations

import re

BEGIN = "# BEGIN vmshare (managed by vmshare; `vmshare remove` takes these entries out)"
END = "# END vmshare"
ENTRY_MARK = "# vmshare:"
_ENTRY_ID = re.compile(r"[A-Za-z0-9_.:-]+")


def lines_of(text: str) -> list[str]:
    """The file's lines, split at each newline (a carriage return before it dropped) and nowhere
    else: the files' own readers split there only, and a value may hold what ``str.splitlines`` also
    breaks at (U+2028, U+0085...), which must stay inside its line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _split(text: str) -> tuple[list[str], list[str], list[str]]:
    """(lines before the block, lines inside it, lines after it)."""
    lines = lines_of(text)
    try:
        start = lines.index(BEGIN)
        end = lines.index(END, start)
    except ValueError:
        return lines, [], []
    return lines[:start], lines[start + 1 : end], lines[end + 1 :]


def entries(text: str) -> dict[str, str]:
    """The block's entries: id -> entry text (its lines joined by newlines)."""
    _, inside, _ = _split(text)
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in inside:
        if line.startswith(ENTRY_MARK):
            current = found.setdefault(line[len(ENTRY_MARK) :], [])
        elif current is not None:
            current.append(line)
    return {entry_id: "\n".join(lines) for entry_id, lines in found.items()}


def _join(before: list[str], block: dict[str, str], after: list[str]) -> str:
    lines = list(before)
    if block:
        lines.append(BEGIN)
        for entry_id, body in block.items():
            lines += [ENTRY_MARK + entry_id, *body.split("\n")]
        lines.append(END)
    lines += after
    return "\n".join(lines) + "\n" if lines else ""


def check_entry(entry_id: str, body: str) -> None:
    """Refuse an entry that could end the block or pose as another entry."""
    if not _ENTRY_ID.fullmatch(entry_id):
        raise ValueError(f"invalid entry id {entry_id!r}")
    for line in body.split("\n"):
        if line.startswith(ENTRY_MARK) or line in (BEGIN, END) or "\r" in line or "\x00" in line:
            raise ValueError("an entry may not contain vmshare's block markers")


def with_entry(text: str, entry_id: str, body: str) -> str:
    """``text`` with entry ``entry_id`` set to ``body`` (added at the end, or replaced)."""
    check_entry(entry_id, body)
    before, _, after = _split(text)
    block = entries(text)
    block[entry_id] = body
    return _join(before, block, after)


def without_entry(text: str, entry_id: str) -> str:
    """``text`` without entry ``entry_id``; the block goes once it is empty."""
    block = entries(text)
    if entry_id not in block:
        return text
    before, _, after = _split(text)
    del block[entry_id]
    return _join(before, block, after)
