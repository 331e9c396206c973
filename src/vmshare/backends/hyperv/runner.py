"""The PowerShell runner a Hyper-V VM's settings choose (its answers are read with
``vmshare.formats.powershell.checked``/``json_result``).

``winrm = "local"`` runs PowerShell on this machine; anything else goes over WinRM, whose
transport (pywinrm) is imported only here, and only then.
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

from vmshare.backends.hyperv.settings import HypervVm
from vmshare.formats.powershell import LocalPowerShell, PowerShellRunner, PsResult


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
