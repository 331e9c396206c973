"""The only way vmshare runs a host command: an argv list, never a shell string.

Commands that need root (exactly those of ``host.privileged.commands``) are run by their
absolute path behind ``sudo -n`` when vmshare itself is not root, so the rule that
``vmshare doctor --sudoers`` prints matches them, and a missing rule fails at once with a hint
instead of hanging on a password prompt.

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

from vmshare.errors import HostCommandError, HostCommandTimeout, PrivilegeRefused

QUICK = 30.0  # s: a query or a small change (id, useradd, smbpasswd, close-share)
RELOAD = 60.0  # s: a file server re-reading its exports or shares (exportfs -ra, smbcontrol)
# sudo's own secure_path on Debian and most distributions: a user's PATH often lacks sbin
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUDOERS_HINT = (
    "run vmshare as root, or give it exactly its commands: `vmshare doctor --sudoers` prints "
    "the lines for /etc/sudoers.d/vmshare"
)


def program(name: str) -> str:
    """The absolute path of a program run as root: as sudo resolves it and its rule names it."""
    if os.path.isabs(name):
        return name
    return shutil.which(name, path=SEARCH_PATH) or f"/usr/sbin/{name}"


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
    sudo = privileged and hasattr(os, "geteuid") and os.geteuid() != 0
    if sudo:
        if shutil.which(program(args[0])) is None:
            raise HostCommandError(
                f"command not found: {args[0]}",
                hint=f"install the package that provides {args[0]!r} and try again",
            )
        if shutil.which("sudo") is None:
            raise HostCommandError(
                f"`{args[0]}` needs root and sudo is not installed", hint=SUDOERS_HINT
            )
        args = ["sudo", "-n", "--", program(args[0]), *args[1:]]
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
    if sudo and proc.returncode != 0 and proc.stderr.startswith(b"sudo: "):
        # sudo itself refused (no rule, a password wanted): the command never ran
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()[0][len("sudo: ") :]
        raise PrivilegeRefused(
            f"sudo refused to run `{_shown(args[3:])}` as root: {reason}", hint=SUDOERS_HINT
        )
    if check and proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        name = os.path.basename(args[3] if sudo else args[0])
        raise HostCommandError(
            f"{name} failed (exit {proc.returncode}): {detail[-1] if detail else 'no output'}",
            hint="see the message above; vmshare changed nothing it did not undo",
        )
    return result


def _shown(args: Sequence[str], limit: int = 120) -> str:
    text = shlex.join(args)
    return text if len(text) <= limit else text[: limit - 3] + "..."
