"""Where the state file lives, and a look into it that builds no models.

``vmshare list`` answers from here, so that it imports no pydantic; every
other reading goes through ``vmshare.state.StateStore``, which validates and migrates.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATE_VERSION = 3
STATE_FILE = "state.json"


def default_state_dir() -> Path:
    override = os.environ.get("VMSHARE_STATE_DIR")
    if override:
        return Path(override)
    import platformdirs  # only without the override: the common case in tests and CI skips it

    return Path(platformdirs.user_state_dir("vmshare"))


@dataclass(frozen=True)
class ListedShare:
    """What ``vmshare list`` prints of a share: the fields of its record it shows."""

    label: str
    vm: str
    target: str
    source: str
    protocol: str
    readonly: bool


def listed_shares(path: Path, vm: str | None = None) -> list[ListedShare] | None:
    """The shares (of one VM, or all, sorted by key) that the state file at ``path`` records,
    read without models; None when only the full load can tell: another version, a damaged
    file or a record that lacks a field (the full load then migrates or says what is wrong)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
        return None
    shares = document.get("shares")
    if not isinstance(shares, dict):
        return None
    listed = []
    for key, record in sorted(shares.items()):
        row = _listed(key, record)
        if row is None:
            return None
        if vm is None or row.vm == vm:
            listed.append(row)
    return listed


def _listed(key: str, record: object) -> ListedShare | None:
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    fields = [record.get(name) for name in ("vm", "target", "source", "protocol")]
    name, readonly = record.get("name"), record.get("readonly")
    if not all(isinstance(f, str) for f in fields) or not isinstance(readonly, bool):
        return None
    if name is not None and not isinstance(name, str):
        return None
    vm, target, source, protocol = (str(f) for f in fields)
    return ListedShare(name or key, vm, target, source, protocol, readonly)
