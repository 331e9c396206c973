"""The one interface to run a command inside a guest: ``GuestChannel.run(argv)``.

Channels: each backend's native one lives with it (libvirt's guest agent in
backends/libvirt/agent.py), ssh here (guest/ssh.py). Later backends add VMware Tools,
VirtualBox guest control and PowerShell Direct behind the same call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GuestResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def error_line(self) -> str:
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {self.exit_code}"


class GuestChannel(Protocol):
    name: str

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        """Run ``argv`` (no shell) in the guest; raise GuestError if the channel itself fails."""
        ...
