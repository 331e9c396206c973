"""The guest channel through VMware Tools guest operations.

``run(argv)`` makes a private temp folder in the guest, uploads stdin there, starts
``/bin/sh -c 'exec "$@" <in >out 2>err'`` with StartProgramInGuest (VMware Tools hands a Linux
guest's command line to /bin/sh, so the argv is quoted once by ``remote_command``, as for ssh),
polls ListProcessesInGuest for the exit code until the deadline (then TerminateProcessInGuest),
fetches stdout and stderr with InitiateFileTransferFromGuest and deletes the folder. File bytes
move over HTTPS with the session's TLS rules. The guest password comes from a secret reference
and goes only into the SOAP body, never into argv or logs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from pyVmomi import vim

from vmshare.backends.vsphere.faults import vim_errors
from vmshare.backends.vsphere.session import CONNECT_TIMEOUT
from vmshare.backends.vsphere.transfer import Transfer
from vmshare.errors import GuestError, GuestTimeout, VmshareError
from vmshare.guest.channel import GuestResult
from vmshare.guest.ssh import remote_command

POLL_START, POLL_MAX = 0.05, 0.5  # s: between ListProcessesInGuest calls
TIMEOUT_HINT = "check the guest (is it overloaded or frozen?) and run the command again"
_WRAPPER = 'in=$1 out=$2 err=$3; shift 3; exec "$@" <"$in" >"$out" 2>"$err"'


class ToolsChannel:
    name = "vmware-tools"

    def __init__(
        self,
        content: Any,
        vm: Any,
        auth: Callable[[], Any],
        transfer: Transfer,
        server: str,
    ) -> None:
        self.content, self.vm, self.auth, self.transfer, self.server = (
            content,
            vm,
            auth,
            transfer,
            server,
        )

    @property
    def _processes(self) -> Any:
        return self.content.guestOperationsManager.processManager

    @property
    def _files(self) -> Any:
        return self.content.guestOperationsManager.fileManager

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        if not argv:
            raise GuestError("empty guest command", hint="a bug: report it")
        deadline = time.monotonic() + timeout
        with vim_errors(self.server, CONNECT_TIMEOUT):
            auth = self.auth()
            folder = self._files.CreateTemporaryDirectoryInGuest(
                self.vm, auth, "vmshare-", "", None
            )
            try:
                paths = [f"{folder}/in", f"{folder}/out", f"{folder}/err"]
                self.upload(paths[0], input or b"", auth)
                command = remote_command(["sh", "-c", _WRAPPER, "sh", *paths, *argv])
                spec = vim.vm.guest.ProcessManager.ProgramSpec(
                    programPath="/bin/sh", arguments=command.removeprefix("sh ")
                )
                pid = self._processes.StartProgramInGuest(self.vm, auth, spec)
                exit_code = self._wait(pid, auth, deadline, argv[0], timeout)
                stdout = self.download(paths[1], auth)
                stderr = self.download(paths[2], auth)
            finally:
                self._remove(folder, auth)
        return GuestResult(exit_code=exit_code, stdout=stdout, stderr=stderr)

    def upload(self, path: str, data: bytes, auth: Any | None = None) -> None:
        """Write ``data`` to ``path`` in the guest (mode 0600), replacing it."""
        with vim_errors(self.server, CONNECT_TIMEOUT):
            attributes = vim.vm.guest.FileManager.PosixFileAttributes(permissions=0o600)
            url = self._files.InitiateFileTransferToGuest(
                self.vm, auth or self.auth(), path, attributes, len(data), True
            )
            self.transfer.put(url, data)

    def download(self, path: str, auth: Any | None = None) -> bytes:
        with vim_errors(self.server, CONNECT_TIMEOUT):
            info = self._files.InitiateFileTransferFromGuest(self.vm, auth or self.auth(), path)
            return self.transfer.get(info.url)

    def _wait(self, pid: int, auth: Any, deadline: float, program: str, timeout: float) -> int:
        delay = POLL_START
        while True:
            found = self._processes.ListProcessesInGuest(self.vm, auth, [pid])
            info = found[0] if found else None
            if info is not None and info.endTime is not None:
                return int(info.exitCode)
            if time.monotonic() > deadline:
                raise self._missed_deadline(pid, auth, program, timeout)
            time.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    def _missed_deadline(self, pid: int, auth: Any, program: str, timeout: float) -> GuestTimeout:
        what = f"guest command {program} (pid {pid})"
        try:
            self._processes.TerminateProcessInGuest(self.vm, auth, pid)
        except Exception as exc:
            return GuestTimeout(
                f"{what} did not finish within {timeout:g} s and could not be stopped ({exc}): "
                "it may still run",
                hint=TIMEOUT_HINT,
                may_still_run=True,
            )
        return GuestTimeout(
            f"{what} did not finish within {timeout:g} s; vmshare stopped it in the guest",
            hint=TIMEOUT_HINT,
            may_still_run=False,
        )

    def _remove(self, folder: str, auth: Any) -> None:
        # a left-over folder in the guest's own temp dir is harmless
        with contextlib.suppress(VmshareError, vim.fault.GuestOperationsFault, vim.fault.FileFault):
            self._files.DeleteDirectoryInGuest(self.vm, auth, folder, True)
