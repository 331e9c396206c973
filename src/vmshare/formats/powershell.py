"""PowerShell scripts built from untrusted strings, and the runners that execute them.

Every untrusted string (path, share name, account) reaches PowerShell through ``quote`` only,
as a single-quoted literal, inside a line rendered by ``command`` or ``assign``. Nothing is ever
interpolated into a double-quoted string, where ``$(...)`` and backticks would be live.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vmshare import hostexec
from vmshare.errors import HostCommandError, UsageError
from vmshare.formats.clixml import plain_stderr
from vmshare.secret_value import redact

# PowerShell ends a single-quoted string at any of these five, unless the next is one too.
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"

# cmd.exe refuses longer command lines; pywinrm's run_ps goes through it.
MAX_COMMAND_LINE = 8191

_CMDLET = re.compile(r"[A-Za-z]+(?:-[A-Za-z][A-Za-z0-9]*)?")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

PRELUDE = ("$ErrorActionPreference = 'Stop'", "$ProgressPreference = 'SilentlyContinue'")


@dataclass(frozen=True)
class Var:
    """A reference to a script variable (``$name``); the name is code, so it is validated."""

    name: str

    def __post_init__(self) -> None:
        if not _VARIABLE.fullmatch(self.name):
            raise ValueError(f"not a PowerShell variable name: {self.name!r}")

    def __str__(self) -> str:
        return "$" + self.name


Value = str | bool | int | Var | Sequence[str | int]


def quote(value: str) -> str:
    """``value`` as a single-quoted PowerShell literal that decodes back to exactly ``value``."""
    # The messages never repeat the value: it may be a secret.
    if "\0" in value:
        raise UsageError(
            "a value passed to PowerShell contains a NUL character",
            hint="remove the NUL character; Windows names and paths cannot contain it",
        )
    try:
        value.encode("utf-16-le")
    except UnicodeEncodeError as exc:  # lone surrogates cannot travel as UTF-16
        raise UsageError(
            "a value passed to PowerShell is not valid Unicode",
            hint="use names and paths that are valid UTF-8 text",
        ) from exc
    return "'" + "".join(c + c if c in SINGLE_QUOTES else c for c in value) + "'"


def literal(value: Value) -> str:
    """Render one argument value: strings quoted, ``$true``/``$false``, digits, ``@(...)``."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "$true" if value else "$false"
    if isinstance(value, int):
        # A bare ``-5`` in argument mode could be taken for a parameter name.
        return str(value) if value >= 0 else f"({value})"
    if isinstance(value, Var):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Sequence):
        return "@(" + ",".join(literal(v) for v in value) + ")"
    raise TypeError(f"cannot render {type(value).__name__} as a PowerShell value")


def command(cmdlet: str, *positional: Value, **params: Value | None) -> str:
    """``Cmdlet 'pos' -Name 'x' -Flag:$true``: names are validated, values go through ``quote``.

    Booleans use the ``-Name:$value`` form, which binds both [bool] and [switch] parameters;
    ``-Force $true`` would pass ``$true`` as a stray positional argument to a switch.
    ``None`` values are left out.
    """
    if not _CMDLET.fullmatch(cmdlet):
        raise ValueError(f"not a cmdlet name: {cmdlet!r}")
    parts = [cmdlet, *(literal(v) for v in positional)]
    for name, value in params.items():
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a parameter name: {name!r}")
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"-{name}:{literal(value)}")
        else:
            parts += [f"-{name}", literal(value)]
    return " ".join(parts)


def pipeline(*commands: str) -> str:
    return " | ".join(commands)


def assign(variable: str, value: Value) -> str:
    """``$variable = <literal>``: how scripts bring an untrusted value in once, by name."""
    return f"{Var(variable)} = {literal(value)}"


def script(*lines: str) -> str:
    """A complete script: stop on any error, and report it as one stderr line with exit 1.

    The catch prints only the exception message, never PowerShell's echo of the failing
    script line, so error text carries no script content.
    """
    return "\n".join(
        [
            *PRELUDE,
            "try {",
            *lines,
            "} catch {",
            "[Console]::Error.WriteLine($_.Exception.Message)",
            "exit 1",
            "}",
        ]
    )


def _encode(script_text: str) -> str:
    return base64.b64encode(script_text.encode("utf-16-le")).decode("ascii")


def encoded_command(
    script_text: str, executable: str = "powershell", limit: int = MAX_COMMAND_LINE
) -> list[str]:
    """The argv that runs ``script_text``; refuse it if a command line of ``limit`` characters
    (cmd.exe's by default) could not take it."""
    argv = [executable, "-NoProfile", "-NonInteractive", "-EncodedCommand", _encode(script_text)]
    length = len(" ".join(argv))
    if length > limit:
        # Never truncate: half a script could run. Never quote the script: it may hold secrets.
        raise UsageError(
            f"the PowerShell script is too long ({length} characters encoded, at most {limit})",
            hint="use shorter paths or names, or split the operation",
        )
    return argv


def ensure_fits(script_text: str) -> None:
    """Raise UsageError if the script is too long to send as an encoded command."""
    encoded_command(script_text)


@dataclass(frozen=True)
class PsResult:
    exit_code: int
    stdout: str
    stderr: str


class PowerShellRunner(Protocol):
    """Runs a complete script; stderr must be plain text (not CLIXML) for error messages."""

    def run(self, script: str, *, timeout: float = 120) -> PsResult: ...


class LocalPowerShell:
    """Runs scripts with the host's ``pwsh`` or ``powershell``, through hostexec."""

    def __init__(self, executable: str | None = None) -> None:
        self._executable = executable

    def _find(self) -> str:
        candidates = [self._executable] if self._executable else ["pwsh", "powershell"]
        for name in candidates:
            found = shutil.which(name)
            if found:
                return found
        raise HostCommandError(
            "PowerShell not found (looked for " + " and ".join(candidates) + ")",
            hint="install PowerShell 7 (pwsh) or run vmshare on the Windows host",
        )

    def run(self, script: str, *, timeout: float = 120) -> PsResult:
        return self._run(script, None, timeout)

    def run_with_input(self, script: str, data: str, *, timeout: float = 120) -> PsResult:
        """Run ``script`` with ``data`` on its standard input (a password: never in argv)."""
        return self._run(script, data.encode("utf-8"), timeout)

    def _run(self, script: str, data: bytes | None, timeout: float) -> PsResult:
        argv = encoded_command(script, self._find())
        result = hostexec.run(argv, input=data, check=False, timeout=timeout)
        return PsResult(
            result.returncode,
            result.stdout.decode("utf-8", "replace"),
            plain_stderr(result.stderr.decode("utf-8", "replace")),
        )


_DENIED = ("access is denied", "requires elevation", "permission", "unauthorizedaccess")


def is_denied(message: str) -> bool:
    """Whether PowerShell's ``message`` says the account lacks a right (the fix is the account's,
    not the script's)."""
    return any(word in message.lower() for word in _DENIED)


def checked(result: PsResult, what: str) -> PsResult:
    """``result`` if the script succeeded. A non-zero exit or anything on the error stream is a
    ``HostCommandError`` naming ``what`` (a verb phrase: "look up VM 'devvm'") with the first
    line of PowerShell's message (``script``'s catch prints the bare exception message there;
    later lines of an uncaught error echo the failing script line, which may hold a value),
    known secrets redacted."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    error = lines[0] if lines else ""
    if result.exit_code != 0 or error:
        detail = redact(error)[:300] if error else f"exit code {result.exit_code}"
        denied = is_denied(error)
        raise HostCommandError(
            f"could not {what} on the Windows host: {detail}",
            hint="run vmshare as an Administrator of the Hyper-V host, or over WinRM as a "
            "member of Hyper-V Administrators"
            if denied
            else "the message is PowerShell's; `vmshare plan` shows the script vmshare runs",
        )
    return result


def json_result(result: PsResult, what: str) -> Any:
    """The value a script printed with ``ConvertTo-Json`` (None when it printed nothing), after
    ``checked``. A profile may print before it: the last line is tried when the whole output is
    not one document. Output that is not JSON is an error, without echoing it."""
    text = checked(result, what).stdout.strip().removeprefix("\ufeff")
    if not text:
        return None
    for candidate in (text, text.splitlines()[-1]):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise HostCommandError(
        f"could not {what}: the Windows host's answer is not JSON",
        hint="the host needs Windows PowerShell 5.1 or PowerShell 7 (ConvertTo-Json), and no "
        "profile that prints to the output",
    )
