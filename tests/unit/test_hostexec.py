"""hostexec: a command that misses its deadline is killed, and the error names it and the bound."""

from __future__ import annotations

import time

import pytest

from vmshare import hostexec
from vmshare.errors import HostCommandError, HostCommandTimeout


def test_a_command_past_its_deadline_is_killed_and_named(tmp_path):
    marker = tmp_path / "late"
    started = time.monotonic()
    with pytest.raises(HostCommandTimeout) as caught:
        hostexec.run(["sh", "-c", 'sleep 5; touch "$1"', "sh", str(marker)], timeout=0.5)
    assert time.monotonic() - started < 4
    assert isinstance(caught.value, HostCommandError)
    message = caught.value.message
    assert message.startswith("`sh -c 'sleep 5; touch \"$1\"' sh ")
    assert "within its 0.5 s deadline and was killed" in message
    time.sleep(5)
    assert not marker.exists()  # killed, not left running


def test_every_call_states_its_deadline():
    with pytest.raises(TypeError):
        hostexec.run(["true"])  # type: ignore[call-arg]
    assert hostexec.run(["true"], timeout=hostexec.QUICK).returncode == 0
