"""vSphere names: the escaped form the server stores and inventory paths hold."""

from __future__ import annotations

import pytest

from vmshare.backends.vsphere.lookup import escape, not_found, unescape


@pytest.mark.parametrize(
    ("shown", "stored"),
    [
        ("plain", "plain"),
        ("build/linux", "build%2flinux"),
        ("50%", "50%25"),
        ("a\\b", "a%5cb"),
        ("%2f literally", "%252f literally"),
        ("ünï/cödé", "ünï%2fcödé"),
    ],
)
def test_escape_round_trips(shown: str, stored: str) -> None:
    assert escape(shown) == stored
    assert unescape(stored) == shown
    assert unescape("BUILD%2Flinux") == "BUILD/linux"  # either case, as servers send it


def test_not_found_hints() -> None:
    error = not_found("web01", "https://vc:443", ["web-01", "db01", "web02"])
    assert error.message == "VM 'web01' not found on https://vc:443"
    assert error.hint is not None and error.hint.startswith("did you mean 'web")
    assert "inventory path" in (not_found("x", "s", ["long-name"]).hint or "")
