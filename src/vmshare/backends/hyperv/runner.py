"""The PowerShell runner a Hyper-V VM's settings call for: this host's PowerShell when
``winrm = "local"``, else WinRM to the host they name."""

from __future__ import annotations

from vmshare.backends.hyperv.settings import HypervVm
from vmshare.formats.powershell import LocalPowerShell, PowerShellRunner


def powershell_for(settings: HypervVm) -> PowerShellRunner:
    if settings.winrm == "local":
        return LocalPowerShell()
    from vmshare.backends.hyperv.winrm import WinRMPowerShell  # pywinrm only when used

    return WinRMPowerShell(settings)
