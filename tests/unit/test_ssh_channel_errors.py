"""The ssh guest channel's own failures come out as one line, whatever ssh printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmshare.errors import GuestError
from vmshare.guest.ssh import SshChannel
from vmshare.spec import GuestAccess

# what OpenSSH prints when the guest accepts the connection and never answers (a frozen guest)
BANNER_TIMEOUT = (
    "Connection timed out during banner exchange\nConnection to 127.0.0.1 port 2222 timed out\n"
)


def test_a_multi_line_ssh_failure_is_one_error_line(tmp_path: Path, monkeypatch) -> None:
    ssh = tmp_path / "ssh"
    ssh.write_text(f"#!/bin/sh\nprintf '{BANNER_TIMEOUT}' >&2\nexit 255\n")
    ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    channel = SshChannel(GuestAccess(ssh_host="127.0.0.1", ssh_port=2222))
    with pytest.raises(GuestError) as info:
        channel.run(["true"], timeout=10)
    assert info.value.message == (
        "ssh to 127.0.0.1 failed: Connection timed out during banner exchange; "
        "Connection to 127.0.0.1 port 2222 timed out"
    )
