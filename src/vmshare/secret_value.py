"""A secret's value, and the redaction of every value this process has seen from text.

Kept apart from vmshare.secrets (the store, its models and pydantic) so that printing, which
redacts every message, costs no model import (``vmshare list`` starts in the time of ``--help``).
"""

from __future__ import annotations

_KNOWN: set[str] = set()


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        # an empty or blank value is in nearly every text: redacting it would mangle them all
        if value.strip():
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
