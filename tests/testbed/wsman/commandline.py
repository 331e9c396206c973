"""What happens to a command line on the Windows side of a WinRM ``cmd`` shell: cmd.exe's
8,191-character limit, then ``powershell -NoProfile -NonInteractive -EncodedCommand <base64 of
UTF-16LE>`` decoded and the script handed to the handler (with the command's stdin, as text,
when the handler takes a second argument, like the Hyper-V stand-in's ``handle(script, stdin)``).

Output goes back the way powershell.exe writes it: stdout in the shell's code page (437 unless the
client asked for another with WINRS_CODEPAGE; 65001 is UTF-8), and stderr starting with the CLIXML
progress record a fresh powershell.exe emits ("Preparing modules for first use.") followed by
what the script wrote to the error stream.
"""

from __future__ import annotations

import base64
import binascii
import inspect
from xml.sax.saxutils import escape

from tests.testbed.wsman.soap import Handler, read_stdin

MAX_COMMAND_LINE = 8191
TOO_LONG = "The command line is too long.\r\n"
BAD_ENCODING = (
    "Cannot process the command because the value specified with -EncodedCommand is not "
    "properly encoded. The value must be Base64 encoded.\r\n"
)

CLIXML_HEADER = "#< CLIXML\r\n"
CLIXML_PROGRESS = CLIXML_HEADER + (
    '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject'
    '</T><T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record">'
    "<AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC>"
    "<T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>"
)

_FLAGS = {"-noprofile", "-nop", "-noninteractive", "-noni", "-nologo"}
_ENCODED = {"-encodedcommand", "-enc", "-ec", "-e"}


def clixml_errors(text: str) -> str:
    """``text`` as powershell.exe writes error records to a redirected stderr: one
    ``<S S="Error">`` per line, CR and LF escaped as ``_x000D_`` / ``_x000A_``."""
    lines = "".join(
        '<S S="Error">' + escape(line).replace("\r", "_x000D_").replace("\n", "_x000A_") + "</S>"
        for line in text.splitlines(keepends=True)
    )
    return (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" '
        f'xmlns="http://schemas.microsoft.com/powershell/2004/04">{lines}</Objs>'
    )


def uncaught_error(command: str, message: str, category: str, error_id: str) -> str:
    """How Windows PowerShell 5.1 writes an error no script caught, ``command`` failing with
    ``message``: the message, where it happened (with the script line), the category and id,
    as CLIXML error records (see ``clixml_errors``)."""
    name = command.split(" ", 1)[0]
    return clixml_errors(
        f"{name} : {message}\r\n"
        "At line:1 char:1\r\n"
        f"+ {command}\r\n"
        f"+ {'~' * len(command)}\r\n"
        f"    + CategoryInfo          : {category}\r\n"
        f"    + FullyQualifiedErrorId : {error_id}\r\n"
        " \r\n"
    )


def _with_progress(stderr: str) -> str:
    """powershell.exe's stderr: one CLIXML document, its progress record first, then the
    records the script wrote; plain text (``[Console]::Error``) after it."""
    if stderr.startswith(CLIXML_HEADER):
        start = stderr.find(">", stderr.find("<Objs")) + 1
        return CLIXML_PROGRESS.removesuffix("</Objs>") + stderr[start:]
    return CLIXML_PROGRESS + stderr


def takes_stdin(handler: Handler) -> bool:
    """A handler with a second positional parameter gets the command's stdin as text."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


def _encoding(codepage: int) -> str:
    return "utf-8" if codepage == 65001 else f"cp{codepage}"


def run(line: str, codepage: int, handler: Handler) -> tuple[int, bytes, bytes]:
    """Run one command line as cmd.exe would start it; the handler plays PowerShell."""
    encoding = _encoding(codepage)
    if len(line) > MAX_COMMAND_LINE:
        return 1, b"", TOO_LONG.encode(encoding)
    words = line.split(" ")
    program = words[0].lower().removesuffix(".exe")
    if program not in ("powershell", "pwsh"):
        return (
            9009,
            b"",
            (
                f"'{words[0]}' is not recognized as an internal or external command,\r\n"
                "operable program or batch file.\r\n"
            ).encode(encoding, "replace"),
        )
    script: str | None = None
    rest = iter(words[1:])
    for word in rest:
        lowered = word.lower()
        if lowered in _FLAGS:
            continue
        if lowered in _ENCODED:
            try:
                script = base64.b64decode(next(rest, ""), validate=True).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError):
                return 1, b"", BAD_ENCODING.encode(encoding)
            continue
        message = f"-{word.lstrip('-')} : The argument is not recognized by powershell.exe.\r\n"
        return 64, b"", message.encode(encoding, "replace")
    if script is None:
        return 1, b"", b"powershell was started without -EncodedCommand\r\n"
    if takes_stdin(handler):
        stdin = read_stdin().decode("utf-8", "replace")
        exit_code, stdout, stderr = handler(script, stdin)
    else:
        exit_code, stdout, stderr = handler(script)
    # Windows replaces what the code page cannot hold with '?'
    return (
        exit_code,
        stdout.encode(encoding, "replace"),
        _with_progress(stderr).encode(encoding, "replace"),
    )
