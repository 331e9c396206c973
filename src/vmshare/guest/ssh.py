"""Guest commands over ssh: the argv is quoted once, for the remote POSIX shell, by shlex.join."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from vmshare import hostexec
from vmshare.errors import (
    GuestError,
    GuestTimeout,
    HostCommandError,
    HostCommandTimeout,
    never_ran,
)
from vmshare.guest.channel import GuestResult
from vmshare.spec import GuestAccess


def remote_command(argv: Sequence[str]) -> str:
    """The single string ssh hands to the remote shell; it must split back into ``argv``."""
    if any("\x00" in arg for arg in argv):
        raise GuestError("a guest command argument contains NUL", hint="remove it")
    return shlex.join(argv)


CONNECT_TIMEOUT = 10  # s: ssh's own ConnectTimeout (TCP connect and the ssh handshake)


def ssh_argv(access: GuestAccess, argv: Sequence[str]) -> list[str]:
    if not access.ssh_host:
        raise GuestError("ssh channel needs ssh_host", hint="set [vm.NAME.guest] ssh_host")
    command = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={CONNECT_TIMEOUT}",
        "-p",
        str(access.ssh_port),
    ]
    command += ["-o", "StrictHostKeyChecking=yes"]  # never trust an unknown host key silently
    if access.ssh_known_hosts:
        command += ["-o", f"UserKnownHostsFile={access.ssh_known_hosts}"]
    if access.ssh_key:
        command += ["-i", access.ssh_key, "-o", "IdentitiesOnly=yes"]
    return [*command, "-l", access.ssh_user, "--", access.ssh_host, remote_command(argv)]


class SshChannel:
    name = "ssh"

    def __init__(self, access: GuestAccess) -> None:
        self.access = access

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        try:
            result = hostexec.run(
                ssh_argv(self.access, argv), input=input, check=False, timeout=timeout
            )
        except HostCommandTimeout:
            raise GuestTimeout(
                f"guest command {argv[0]} over ssh to {self.access.ssh_host} did not finish "
                f"within {timeout:g} s; ssh was stopped, but the command may still run there",
                hint="check the guest (overloaded? a hung mount?); then run the command again",
                may_still_run=True,
            ) from None
        except HostCommandError as exc:
            raise GuestError(f"ssh to the guest failed: {exc.message}", hint=exc.hint) from None
        if result.returncode == 255:
            raise ssh_failure(self.access, result.stderr.decode("utf-8", "replace"))
        return GuestResult(result.returncode, result.stdout, result.stderr)


def ssh_failure(access: GuestAccess, stderr: str) -> GuestError:
    """ssh's own failure (exit 255) as one line: its messages joined, and a hint for what they
    say (a guest that does not answer is not a key to check)."""
    said = "; ".join(line.strip() for line in stderr.splitlines() if line.strip())[:300]
    where = f"{access.ssh_host} port {access.ssh_port}"
    if _NOT_CONNECTED.search(said):  # the command never reached the guest
        return never_ran(_ssh_failure(where, said))
    return _ssh_failure(where, said)


# ssh's words for a connection that never came up or never logged in (no command was sent)
_NOT_CONNECTED = re.compile(
    r"connect to host|Connection refused|during banner exchange|Could not resolve hostname"
    r"|Permission denied \(|Host key verification failed"
)


def _ssh_failure(where: str, said: str) -> GuestError:
    if "timed out" in said.lower():
        return GuestError(
            f"ssh to {where} failed: {said or 'no message'}",
            hint=f"the guest did not answer ssh within {CONNECT_TIMEOUT} s: check that it runs "
            "(not paused, hung or overloaded), then run the command again",
        )
    return GuestError(
        f"ssh to {where} failed: {said or 'no message'}",
        hint="check ssh_host/ssh_port/ssh_user/ssh_key, that the key is authorised in the "
        "guest, and that its host key is in known_hosts (or set ssh_known_hosts)",
    )
