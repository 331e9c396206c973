"""The PowerShell runner a Hyper-V VM's settings choose, and how its JSON answers are read.

``winrm = "local"`` runs PowerShell on this machine; anything else goes over WinRM, whose
transport (pywinrm) is imported only here, and only then.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Protocol, runtime_checkable

from vmshare.backends.hyperv.settings import HypervVm
from vmshare.errors import HostCommandError
from vmshare.formats.powershell import LocalPowerShell, PowerShellRunner, PsResult

ADMIN_HINT = (
    "run vmshare as an administrator of the Hyper-V host (member of Hyper-V Administrators)"
)


@runtime_checkable
class InputRunner(Protocol):
    """A runner that can also hand the script data on its standard input: how a password
    reaches a script without being in its text, its argv or a log."""

    def run_with_input(self, script: str, data: str, *, timeout: float = 120) -> PsResult: ...


def runner_for(settings: HypervVm) -> PowerShellRunner:
    """The runner the settings ask for."""
    if settings.winrm == "local":
        return LocalPowerShell()
    # by name: the WinRM transport (and pywinrm under it) loads only for a remote host
    module = importlib.import_module("vmshare.backends.hyperv.winrm")
    runner: PowerShellRunner = module.WinRMPowerShell(settings)
    return runner


def checked(result: PsResult, what: str) -> PsResult:
    """``result`` if the script succeeded; else one line: what failed and PowerShell's message."""
    if result.exit_code != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        detail = lines[0][:300] if lines else f"exit {result.exit_code}, no message"
        raise HostCommandError(f"could not {what}: {detail}", hint=ADMIN_HINT)
    return result


def json_answer(result: PsResult, what: str) -> Any:
    """The one JSON document a query script printed last (ConvertTo-Json), decoded."""
    text = checked(result, what).stdout.strip()
    last = text.splitlines()[-1] if text else ""
    try:
        return json.loads(last)
    except ValueError:
        raise HostCommandError(
            f"could not {what}: PowerShell did not answer with JSON",
            hint="a PowerShell profile or module may print to the output; check the host",
        ) from None
