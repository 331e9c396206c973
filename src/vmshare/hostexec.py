"""The only way vmshare runs a host command: an argv list, never a shell string.

Commands that need root are prefixed with ``sudo -n`` when vmshare itself is not root, so a
missing sudo rule fails at once with a hint instead of hanging on a password prompt.

Every call states its deadline (there is no default): ``QUICK`` for a command that answers at
once, ``RELOAD`` for a file server re-reading its configuration, or a bound of the caller's own.
A command that misses it is killed and raises HostCommandTimeout naming the command and the bound.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from vmshare.errors import HostCommandError, HostCommandTimeout

QUICK = 30.0  # s: a query or a small change (id, useradd, smbpasswd, close-share)
RELOAD = 60.0  # s: a file server re-reading its exports or shares (exportfs -ra, smbcontrol)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    privileged: bool = False,
    check: bool = True,
    timeout: float,
) -> CommandResult:
    """Run ``argv`` on the host and return its result; raise HostCommandError on failure."""
    if isinstance(argv, str):  # a string here is a bug: it would be split or shell-parsed
        raise TypeError("hostexec.run takes an argv list, not a string")
    args = [os.fspath(a) for a in argv]
    if privileged and os.geteuid() != 0:
        args = ["sudo", "-n", "--", *args]
    if shutil.which(args[0]) is None:
        raise HostCommandError(
            f"command not found: {args[0]}",
            hint=f"install the package that provides {args[0]!r} and try again",
        )
    try:
        proc = subprocess.run(args, input=input, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HostCommandTimeout(
            f"`{_shown(args)}` did not finish within its {timeout:g} s deadline and was killed",
            hint="check the host (is the service hung?) and retry",
        ) from exc
    result = CommandResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise HostCommandError(
            f"{args[0]} failed (exit {proc.returncode}): {detail[-1] if detail else 'no output'}",
            hint="sudo needs a NOPASSWD rule for this command"
            if args[0] == "sudo"
            else "see the message above; vmshare changed nothing it did not undo",
        )
    return result


def _shown(args: Sequence[str], limit: int = 120) -> str:
    text = shlex.join(args)
    return text if len(text) <= limit else text[: limit - 3] + "..."
