"""A PowerShellRunner that hands each script to the Hyper-V host stand-in the way a real
transport would: through ``encoded_command`` (so the 8,191-character limit holds), decoded back
from its -EncodedCommand argument. The WinRM path replaces this once the WS-Man endpoint lands.
"""

from __future__ import annotations

import base64

from tests.testbed.hyperv import HyperVHost
from vmshare.formats.clixml import plain_stderr
from vmshare.formats.powershell import PsResult, encoded_command


class StandInPowerShell:
    """``PowerShellRunner`` (and ``InputRunner``) over a ``HyperVHost``."""

    def __init__(self, host: HyperVHost) -> None:
        self.host = host
        self.argvs: list[list[str]] = []  # every argv "sent": tests check no secret is in one

    def run(self, script: str, *, timeout: float = 120) -> PsResult:
        return self.run_with_input(script, "", timeout=timeout)

    def run_with_input(self, script: str, data: str, *, timeout: float = 120) -> PsResult:
        argv = encoded_command(script)
        self.argvs.append(argv)
        decoded = base64.b64decode(argv[-1]).decode("utf-16-le")
        code, out, err = self.host.handle(decoded, data)
        return PsResult(code, out, plain_stderr(err))  # as both real transports read it
