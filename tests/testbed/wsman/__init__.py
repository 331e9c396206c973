"""A loopback WS-Management (WinRM) endpoint for the Hyper-V tests: real pywinrm talks to it
over HTTP or HTTPS with Basic or NTLM (with message encryption), and a pluggable handler plays
PowerShell on the "Windows host". See docs/testing.md."""

from tests.testbed.wsman.commandline import CLIXML_PROGRESS, MAX_COMMAND_LINE, clixml_errors
from tests.testbed.wsman.server import WsmanEndpoint
from tests.testbed.wsman.soap import Handler, read_stdin
from tests.testbed.wsman.tap import Silent, Tap
from tests.testbed.wsman.tls import TestCa, make_ca

__all__ = [
    "CLIXML_PROGRESS",
    "MAX_COMMAND_LINE",
    "Handler",
    "Silent",
    "Tap",
    "TestCa",
    "WsmanEndpoint",
    "clixml_errors",
    "make_ca",
    "read_stdin",
]
