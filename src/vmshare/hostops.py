"""Host-side actions on the user's directories. They create and remove only empty folders."""

from __future__ import annotations

import os
from pathlib import Path


class HostOps:
    def mkdir(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def rmdir_empty(self, path: str) -> str | None:
        """Remove a folder vmshare created, only if it is still empty: never the user's files."""
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return None
        except OSError:
            return f"left {path} on the host: it is not empty"
        return None
