"""The guest channel through vmrun's guest commands (VMware Tools in the guest).

``run(argv)`` copies stdin into the guest (``copyFileFromHostToGuest``), runs
``/bin/sh -c 'exec "$@" <in >out 2>err'`` with ``runProgramInGuest`` (Tools hands a Linux guest's
command line to /bin/sh, so the argv is quoted once, as for ssh), copies stdout and stderr back
(``copyFileFromGuestToHost``) and removes the three files. vmrun takes the guest password on its
own command line (``-gp``), where the host's process list shows it while vmrun runs: plans say so
and prefer ssh; vmshare never logs that argv.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from vmshare.backends.vmware_desktop.vmrun import Login, Vmrun, error_line
from vmshare.errors import GuestError, GuestTimeout, HypervisorError
from vmshare.guest.channel import GuestResult
from vmshare.guest.ssh import remote_command

_WRAPPER = 'in=$1 out=$2 err=$3; shift 3; exec "$@" <"$in" >"$out" 2>"$err"'
_EXIT = re.compile(r"Guest program exited with non-zero exit code: (-?\d+)")


class VmrunChannel:
    name = "vmrun"

    def __init__(self, vmrun: Vmrun, login: Callable[[], Login], vm: str) -> None:
        self.vmrun, self.login, self.vm = vmrun, login, vm

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        if not argv:
            raise GuestError("empty guest command", hint="a bug: report it")
        login = self.login()
        base = f"/tmp/vmshare-{secrets.token_hex(8)}"
        paths = [f"{base}.in", f"{base}.out", f"{base}.err"]
        command = remote_command(["sh", "-c", _WRAPPER, "sh", *paths, *argv])
        with tempfile.TemporaryDirectory(prefix="vmshare-vmrun-") as folder:
            local = Path(folder)
            (local / "in").write_bytes(input or b"")
            try:
                self._guest("copyFileFromHostToGuest", str(local / "in"), paths[0], login=login)
                status = self._program(command.removeprefix("sh "), login, timeout, argv[0])
                self._guest("copyFileFromGuestToHost", paths[1], str(local / "out"), login=login)
                self._guest("copyFileFromGuestToHost", paths[2], str(local / "err"), login=login)
                stdout = (local / "out").read_bytes()
                stderr = (local / "err").read_bytes()
            finally:
                self._remove(paths, login)
        return GuestResult(exit_code=status, stdout=stdout, stderr=stderr)

    def _guest(self, command: str, *args: str, login: Login) -> None:
        try:
            self.vmrun.run(command, *args, login=login)
        except HypervisorError as exc:
            raise GuestError(
                f"{exc.message} (guest commands in VM {self.vm!r})",
                hint="make sure VMware Tools run in the guest and [vm.NAME.guest] login_user and "
                'login_password are right, or set channel = "ssh" and ssh_host',
            ) from None

    def _program(self, arguments: str, login: Login, timeout: float, program: str) -> int:
        """The guest program's exit status (vmrun prints a non-zero one)."""
        try:
            status, out = self.vmrun.run(
                "runProgramInGuest", "/bin/sh", arguments, login=login, timeout=timeout,
                check=False,
            )  # fmt: skip
        except HypervisorError:
            raise GuestTimeout(
                f"guest command {program} did not finish within {timeout:g} s",
                hint="check the guest (is it overloaded or frozen?) and run the command again",
                may_still_run=True,
            ) from None
        found = _EXIT.search(out)
        if found:
            return int(found.group(1))
        if "Error:" in out or status != 0:
            raise GuestError(
                f"vmrun runProgramInGuest failed in VM {self.vm!r}: "
                f"{error_line(out, '', status) or status}",
                hint="make sure VMware Tools run in the guest and the guest login is right",
            )
        return 0

    def _remove(self, paths: list[str], login: Login) -> None:
        # a left-over file in the guest's /tmp is harmless: never mask the real outcome
        with contextlib.suppress(HypervisorError):
            self.vmrun.run("runProgramInGuest", "/bin/rm", "-f " + " ".join(paths), login=login)
