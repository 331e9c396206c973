"""Where the state file lives, and a look into it that builds no models.

``vmshare list`` of an empty state answers from here, so that it imports no pydantic; every
other reading goes through ``vmshare.state.StateStore``, which validates and migrates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STATE_VERSION = 3
STATE_FILE = "state.json"


def default_state_dir() -> Path:
    override = os.environ.get("VMSHARE_STATE_DIR")
    if override:
        return Path(override)
    import platformdirs  # only without the override: the common case in tests and CI skips it

    return Path(platformdirs.user_state_dir("vmshare"))


def holds_no_shares(path: Path) -> bool:
    """Whether the state file at ``path`` certainly records no share: it is missing, or it is a
    document of the current version whose ``shares`` are empty. Anything else (shares, another
    version, a damaged file) is False: the full load decides, with its migrations and errors."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        document = json.loads(raw)
    except ValueError:
        return False
    return (
        isinstance(document, dict)
        and document.get("version") == STATE_VERSION
        and document.get("shares") == {}
    )
