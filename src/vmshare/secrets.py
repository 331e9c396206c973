"""Credentials vmshare generates (the SMB account's password): kept in a 0600 file in the state
dir, never put on a command line, in a plan, in state, in output or in an exception.

A ``Secret`` prints as ``***``; ``redact`` scrubs every known secret from a text before it is
shown, as a second line of defence.
"""

from __future__ import annotations

import os
import re
import secrets as _random
from pathlib import Path

from vmshare.errors import StateError
from vmshare.fsutil import atomic_write

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KNOWN: set[str] = set()


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        _KNOWN.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def redact(text: str) -> str:
    for value in _KNOWN:
        text = text.replace(value, "***")
    return text


class SecretStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / "secrets"

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise StateError(f"invalid secret name {name!r}")
        return self.directory / name

    def get_or_create(self, name: str) -> Secret:
        """The secret ``name``, generated (32 random URL-safe bytes) on first use."""
        path = self._path(name)
        try:
            return Secret(path.read_text(encoding="utf-8").strip())
        except FileNotFoundError:
            pass
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        value = _random.token_urlsafe(32)
        atomic_write(path, value.encode(), mode=0o600)
        return Secret(value)

    def delete(self, name: str) -> None:
        """Forget the secret ``name`` (gone already is fine)."""
        self._path(name).unlink(missing_ok=True)
