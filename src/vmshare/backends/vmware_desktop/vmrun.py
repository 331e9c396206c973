"""vmrun, the program that drives Workstation and Fusion: found, run as an argv list, its error
output checked (vmrun often exits 0 after printing ``Error: ...``), never shown with the guest
password it takes on its command line."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vmshare.errors import BackendUnavailable, HypervisorError
from vmshare.secret_value import Secret, redact

QUICK = 30.0  # s: a query or a shared-folder change
POWER = 300.0  # s: vmrun start/stop (a soft stop waits for the guest to shut down)
HIDDEN = "<guest password>"  # what plans show instead of the -gp value
# where the VMware installers put vmrun, when it is not on PATH (Fusion never puts it there)
INSTALL_PATHS: dict[str, tuple[str, ...]] = {
    "linux": ("/usr/bin/vmrun", "/usr/local/bin/vmrun"),
    "darwin": ("/Applications/VMware Fusion.app/Contents/Library/vmrun",),
    "win32": (
        r"C:\Program Files (x86)\VMware\VMware Workstation\vmrun.exe",
        r"C:\Program Files\VMware\VMware Workstation\vmrun.exe",
    ),
}
Product = Literal["ws", "fusion"]


def find_vmrun(configured: str | None) -> str | None:
    """The vmrun program: the configured one, else on PATH, else where VMware installs it."""
    if configured is not None:
        return configured if Path(configured).is_file() else shutil.which(configured)
    found = shutil.which("vmrun")
    if found:
        return found
    for path in INSTALL_PATHS.get(sys.platform, ()):
        if Path(path).is_file():
            return path
    return None


def product_of(setting: str) -> Product:
    """``vmrun -T``: Fusion on macOS, Workstation elsewhere, unless the settings say."""
    if setting in ("ws", "fusion"):
        return setting  # type: ignore[return-value]
    return "fusion" if sys.platform == "darwin" else "ws"


@dataclass(frozen=True)
class Login:
    """A guest account for vmrun's guest commands (``-gu``/``-gp``)."""

    user: str
    password: Secret


class Vmrun:
    def __init__(self, program: str | None, product: Product, vmx: str) -> None:
        self.program, self.product, self.vmx = program, product, vmx

    def argv(self, command: str, *args: str, login: Login | None = None) -> list[str]:
        head = [self.program or "vmrun", "-T", self.product]
        if login is not None:
            head += ["-gu", login.user, "-gp", login.password.reveal()]
        target = [] if command == "list" else [self.vmx]
        return [*head, command, *target, *args]

    def shown(self, command: str, *args: str, login_user: str | None = None) -> str:
        """The command line as a plan shows it: the guest password replaced."""
        head = ["vmrun", "-T", self.product]
        if login_user is not None:
            head += ["-gu", login_user, "-gp", HIDDEN]
        target = [] if command == "list" else [self.vmx]
        return shlex.join([*head, command, *target, *args])

    def run(
        self,
        command: str,
        *args: str,
        login: Login | None = None,
        timeout: float = QUICK,
        check: bool = True,
    ) -> tuple[int, str]:
        """(exit status, stdout) of one vmrun call; with ``check``, vmrun's ``Error:`` lines and
        a failing exit status raise HypervisorError. No message holds the argv."""
        if self.program is None:
            raise BackendUnavailable(
                "vmrun not found (not on PATH nor where Workstation/Fusion install it)",
                hint="install VMware Workstation or Fusion, or set [vm.NAME] vmrun to its path",
            )
        try:
            proc = subprocess.run(
                self.argv(command, *args, login=login),
                capture_output=True,
                timeout=timeout,
                check=False,
                env={**os.environ, "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            raise HypervisorError(
                f"vmrun {command} did not finish within its {timeout:g} s deadline and was killed",
                hint="check the VM in Workstation/Fusion (is a dialog waiting?) and retry",
            ) from None
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot run vmrun ({self.program}): {exc.strerror}",
                hint="check [vm.NAME] vmrun, or reinstall Workstation/Fusion",
            ) from None
        out = proc.stdout.decode("utf-8", "replace")
        if check:
            error = error_line(out, proc.stderr.decode("utf-8", "replace"), proc.returncode)
            if error is not None:
                raise HypervisorError(
                    f"vmrun {command} failed: {redact(error)}",
                    hint="see VMware's message; vmshare undid what it had done",
                )
        return proc.returncode, out


def error_line(stdout: str, stderr: str, status: int) -> str | None:
    """vmrun's complaint, if any: an ``Error:`` line (on stdout, often with exit status 0), else
    the last line of a failing run."""
    for line in (stdout + "\n" + stderr).splitlines():
        if line.strip().startswith("Error:"):
            return line.strip().removeprefix("Error:").strip() or "unknown error"
    if status != 0:
        lines = (stderr.strip() or stdout.strip()).splitlines()
        return lines[-1] if lines else f"exit status {status}"
    return None
