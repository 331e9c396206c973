"""PowerShell Direct: a guest channel into a Windows VM through the Hyper-V host
(``Invoke-Command -VMName``), no network between them needed.

The guest code (``vmshare.guest.windows``) hands this channel an argv ``powershell.exe ...
-EncodedCommand B64``; the guest script, its standard input (which may hold a share password)
and the guest login's password reach the host script on its own standard input as one JSON
line, and go on to the guest as ``-ArgumentList`` values, never spliced into code: no secret is
in a script text, an argv or a log, and the host script stays small and constant.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from vmshare.backends.hyperv.runner import InputRunner
from vmshare.errors import GuestError, UsageError
from vmshare.formats.powershell import (
    PowerShellRunner,
    Var,
    assign,
    command,
    ensure_fits,
    json_result,
    script,
)
from vmshare.guest.channel import GuestResult
from vmshare.secrets import resolve_secret
from vmshare.spec import GuestAccess

# Runs in the guest: the guest script as its own powershell.exe process, with its input. The
# script travels as plain text and is encoded in the guest: encoding it twice would pass the
# host's command-line limit at a third of the size.
GUEST_BLOCK = (
    "{ param($script, $inputText) "
    "$encoded = [System.Convert]::ToBase64String([System.Text.Encoding]::Unicode.GetBytes("
    "$script)); "
    "$info = New-Object -TypeName System.Diagnostics.ProcessStartInfo -ArgumentList "
    "@('powershell.exe', ('-NoProfile -NonInteractive -EncodedCommand ' + $encoded)); "
    "$info.UseShellExecute = $false; $info.RedirectStandardInput = $true; "
    "$info.RedirectStandardOutput = $true; $info.RedirectStandardError = $true; "
    "$process = [System.Diagnostics.Process]::Start($info); "
    "$process.StandardInput.Write($inputText); $process.StandardInput.Close(); "
    "$out = $process.StandardOutput.ReadToEnd(); $err = $process.StandardError.ReadToEnd(); "
    "$process.WaitForExit(); "
    "@{ code = $process.ExitCode; out = $out; err = $err } }"
)


def guest_script(argv: Sequence[str]) -> str:
    """The script a guest argv ``powershell.exe ... -EncodedCommand B64`` runs."""
    args = list(argv)
    if len(args) < 2 or args[-2] != "-EncodedCommand":
        raise UsageError(
            "PowerShell Direct runs only encoded PowerShell scripts in the guest",
            hint="this is a bug in vmshare's Windows guest code",
        )
    return decode_guest(args[-1])


def host_script(vm: str, user: str) -> str:
    """The host script: reads {password, script, input} from stdin as one JSON line, and runs
    the guest script in ``vm`` through the guest block. The guest script travels as data too:
    in the host script's text it would pass the command-line limit (8,191) at ~2,000 chars."""
    return script(
        assign("vmName", vm),
        assign("user", user),
        "$secret = [Console]::In.ReadLine() | ConvertFrom-Json",
        "$password = $secret.password",
        "$secure = "
        + command("ConvertTo-SecureString", String=Var("password"), AsPlainText=True, Force=True),
        "$credArgs = @($user, $secure)",
        "$credential = "
        + command(
            "New-Object",
            TypeName="System.Management.Automation.PSCredential",
            ArgumentList=Var("credArgs"),
        ),
        "$guestArgs = @($secret.script, $secret.input)",
        "$result = Invoke-Command -VMName $vmName -Credential $credential -ScriptBlock "
        + GUEST_BLOCK
        + " -ArgumentList $guestArgs",
        command("ConvertTo-Json", InputObject=Var("result"), Compress=True),
    )


class PowerShellDirect:
    """``GuestChannel`` into a Windows VM through its Hyper-V host."""

    name = "powershell-direct"

    def __init__(self, runner: PowerShellRunner, vm: str, access: GuestAccess) -> None:
        self.runner, self.vm, self.access = runner, vm, access

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        if self.access.login_password is None:
            raise GuestError(
                f"PowerShell Direct into VM {self.vm!r} needs a guest login",
                hint=f'set [vm.{self.vm}.guest] login_user and login_password_env = "NAME"',
            )
        if not isinstance(self.runner, InputRunner):
            raise GuestError(
                "this PowerShell transport cannot hand the guest password to a script on its input",
                hint=f'use ssh: set [vm.{self.vm}.guest] channel = "ssh" and ssh_host',
            )
        what = f"the guest password of {self.access.login_user} in VM {self.vm!r}"
        password = resolve_secret(self.access.login_password, what).reveal()
        text = host_script(self.vm, self.access.login_user)
        ensure_fits(text)
        data = json.dumps(
            {
                "password": password,
                "script": guest_script(argv),
                "input": (input or b"").decode("utf-8"),
            },
            ensure_ascii=True,
        )
        result = self.runner.run_with_input(text, data + "\n", timeout=timeout)
        answer = json_result(result, f"run a command in VM {self.vm!r} (PowerShell Direct)")
        return GuestResult(
            int(answer.get("code", 1)),
            str(answer.get("out") or "").encode("utf-8"),
            str(answer.get("err") or "").encode("utf-8"),
        )


def decode_guest(encoded: str) -> str:
    """The guest script an encoded command carries (tests and the stand-in read it back)."""
    return base64.b64decode(encoded).decode("utf-16-le")
