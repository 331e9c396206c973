"""Test doubles that are part of vmshare's public API.

``LocalChannel`` is to a guest channel what httpx's ``MockTransport`` is to a transport: a
channel for tests that runs each argv as a local subprocess (no shell), so code that needs a
guest channel (guest steps, probes, the guest's fstab) can be tested without a VM. It keeps
the whole channel contract (tests/contract/channel.py): argv and stdin arrive as given, output
and exit codes come back exactly, and a command that misses its deadline is killed with its
process group and reported as GuestTimeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from vmshare.errors import GuestError, GuestTimeout
from vmshare.guest.channel import GuestResult

KILL_WAIT = 5.0  # s: for a killed command to be reaped


class LocalChannel:
    """Runs guest commands on this machine. ``cwd`` and ``env`` apply to every command."""

    name = "local"

    def __init__(
        self, *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.calls: list[list[str]] = []  # every argv run, for assertions

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        argv = list(argv)
        if not argv:
            raise GuestError("empty guest command", hint="name a program to run")
        self.calls.append(argv)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,  # its own process group: a timeout kills its children
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise GuestError(
                f"cannot run {argv[0]!r}: {exc.strerror}", hint="is the program installed?"
            ) from None
        try:
            stdout, stderr = proc.communicate(input or b"", timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.communicate(timeout=KILL_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise GuestTimeout(
                f"local command {argv[0]} did not finish within {timeout:g} s; it was killed "
                "with its process group",
                hint="the test's command hangs, or its timeout is too short",
                may_still_run=False,
            ) from None
        # a negative return code is a signal: report it as a shell would (128 + signal)
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        return GuestResult(code, stdout, stderr)
