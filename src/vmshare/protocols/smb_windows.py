"""SMB export on a Windows host: one encrypted share per directory, for exactly one account.

The scripts are pure functions of their arguments (unit-tested by parsing them); the exporter
runs them through any ``PowerShellRunner`` (local PowerShell, or WinRM for Hyper-V hosts).
"""

from __future__ import annotations

import re
import unicodedata

from vmshare.errors import HostCommandError, UsageError
from vmshare.formats.powershell import (
    PowerShellRunner,
    PsResult,
    Var,
    assign,
    command,
    ensure_fits,
    is_denied,
    pipeline,
    script,
)
from vmshare.secret_value import redact

MAX_SHARE_NAME = 80
_FORBIDDEN_IN_NAME = set('"/\\[]:|<>+=;,*?')
# Windows' own administrative shares: vmshare must never replace or remove them.
_RESERVED_NAME = re.compile(r"(?i)(?:[a-z]|admin|ipc|print)\$")
_EVERYONE = {"everyone", "s-1-1-0", "*s-1-1-0"}
_LOCAL_PATH = re.compile(r"[A-Za-z]:\\")

_NAME, _PATH, _ACCOUNT, _EVERYONE_VAR = Var("name"), Var("path"), Var("account"), Var("everyone")
# Localised Windows names Everyone differently ("Jeder"): resolve it from its well-known SID.
_RESOLVE_EVERYONE = (
    "$everyone = ([System.Security.Principal.SecurityIdentifier]'S-1-1-0')"
    ".Translate([System.Security.Principal.NTAccount]).Value"
)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def validate_share_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_SHARE_NAME:
        raise UsageError(
            f"SMB share name must be 1 to {MAX_SHARE_NAME} characters, got {len(name)}",
            hint="choose a shorter share name",
        )
    bad = sorted(set(name) & _FORBIDDEN_IN_NAME)
    if bad or _has_control(name):
        shown = "".join(bad) if bad else "a control character"
        raise UsageError(
            f"SMB share name {name!r} contains {shown}",
            hint='share names cannot contain control characters or any of "/\\[]:|<>+=;,*?',
        )
    if _RESERVED_NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is a Windows administrative share", hint="choose another share name"
        )
    return name


def _validate_path(path: str) -> str:
    if not _LOCAL_PATH.match(path):
        raise UsageError(
            f"not an absolute local Windows path: {path!r}", hint=r"use a path like C:\data"
        )
    return path


def _validate_account(account: str) -> str:
    if not account.strip() or _has_control(account):
        raise UsageError(
            "the SMB account name is empty or has control characters",
            hint=r"name one Windows account, like DOMAIN\user or MACHINE\user",
        )
    if account.strip().lower().rsplit("\\", 1)[-1] in _EVERYONE:
        raise UsageError(
            "vmshare never shares with Everyone", hint="name the one account the VM logs in as"
        )
    return account


def _find_share() -> str:
    # Filter the list rather than pass -Name: a missing name is an error there, and hiding it
    # with -ErrorAction SilentlyContinue would hide real failures (access denied) too.
    return pipeline(
        command("Get-SmbShare"), command("Where-Object", Property="Name", EQ=True, Value=_NAME)
    )


class WindowsSmbExporter:
    def __init__(self, runner: PowerShellRunner) -> None:
        self._runner = runner

    # Scripts: pure, so they can be parsed and checked without Windows.

    def share_script(self, name: str, path: str, account: str, readonly: bool) -> str:
        validate_share_name(name)
        _validate_path(path)
        _validate_account(account)
        grant = {"ReadAccess": _ACCOUNT} if readonly else {"FullAccess": _ACCOUNT}
        return script(
            assign("name", name),
            assign("path", path),
            assign("account", account),
            _RESOLVE_EVERYONE,
            "if ($account -eq $everyone) { throw 'vmshare never shares with Everyone' }",
            f"$share = {_find_share()}",
            "if ($share) {",
            # Same share, same directory: converge its settings. Another directory: not ours.
            "if ($share.Path.TrimEnd('\\') -ne $path.TrimEnd('\\')) "
            "{ throw ('SMB share ' + $name + ' already exists for ' + $share.Path) }",
            command(
                "Set-SmbShare",
                Name=_NAME,
                EncryptData=True,
                FolderEnumerationMode="AccessBased",
                CachingMode="None",
                Force=True,
            ),
            "} else {",
            # Naming an account keeps New-SmbShare from granting Everyone read by default.
            pipeline(
                command(
                    "New-SmbShare",
                    Name=_NAME,
                    Path=_PATH,
                    EncryptData=True,
                    FolderEnumerationMode="AccessBased",
                    CachingMode="None",
                    **grant,
                ),
                command("Out-Null"),
            ),
            "}",
            pipeline(
                command(
                    "Grant-SmbShareAccess",
                    Name=_NAME,
                    AccountName=_ACCOUNT,
                    AccessRight="Read" if readonly else "Full",
                    Force=True,
                ),
                command("Out-Null"),
            ),
            # Grant first, then revoke: the share never passes through an empty ACL.
            "if ("
            + pipeline(
                command("Get-SmbShareAccess", Name=_NAME),
                command("Where-Object", Property="AccountName", EQ=True, Value=_EVERYONE_VAR),
            )
            + ") {",
            pipeline(
                command("Revoke-SmbShareAccess", Name=_NAME, AccountName=_EVERYONE_VAR, Force=True),
                command("Out-Null"),
            ),
            "}",
        )

    def unshare_script(self, name: str) -> str:
        validate_share_name(name)
        return script(
            assign("name", name),
            f"if ({_find_share()}) {{",
            command("Remove-SmbShare", Name=_NAME, Force=True),
            "}",
        )

    def exists_script(self, name: str) -> str:
        validate_share_name(name)
        return script(
            assign("name", name),
            f"$share = {_find_share()}",
            "Write-Output ($null -ne $share)",
        )

    # Actions.

    def export(self, name: str, path: str, account: str, *, readonly: bool) -> None:
        self._run(self.share_script(name, path, account, readonly), f"share {path} as {name}")

    def unexport(self, name: str) -> None:
        self._run(self.unshare_script(name), f"remove SMB share {name!r}")

    def exported(self, name: str) -> bool:
        out = self._run(self.exists_script(name), f"look up SMB share {name!r}").stdout
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        if lines and lines[-1] in ("True", "False"):
            return lines[-1] == "True"
        raise HostCommandError(
            f"could not look up SMB share {name!r}: unexpected output from PowerShell",
            hint="run the lookup again; if it persists, check the host's PowerShell profile",
        )

    def _run(self, script_text: str, action: str) -> PsResult:
        ensure_fits(script_text)  # same limit whatever the runner, so behaviour does not vary
        result = self._runner.run(script_text)
        if result.exit_code != 0:
            # Only the first line: the script's catch prints the bare exception message there,
            # and an error no catch saw puts its message first (then the failing script line)
            lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
            detail = redact(lines[0])[:300] if lines else f"exit {result.exit_code}, no message"
            raise HostCommandError(
                f"could not {action} on the Windows host: {detail}",
                hint="run vmshare as an administrator on the Windows host, then retry"
                if is_denied(detail)
                else "the message is PowerShell's; `vmshare plan` shows the script vmshare runs",
            )
        return result
