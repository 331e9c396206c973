"""Guest commands over ssh: the argv is quoted once, for the remote POSIX shell, by shlex.join."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from vmshare import hostexec
from vmshare.errors import GuestError, GuestTimeout, HostCommandError, HostCommandTimeout
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
            # ssh's complaint may span lines ("... during banner exchange", "Connection to ...
            # timed out"): the error stays one line
            text = result.stderr.decode("utf-8", "replace")
            said = "; ".join(line.strip() for line in text.splitlines() if line.strip())
            raise GuestError(
                f"ssh to {self.access.ssh_host} failed: {said[:200]}",
                hint="check ssh_host/ssh_port/ssh_user/ssh_key, that the key is authorised in the "
                "guest, and that its host key is in known_hosts (or set ssh_known_hosts)",
            )
        return GuestResult(result.returncode, result.stdout, result.stderr)
