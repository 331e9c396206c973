"""PowerShell's CLIXML on stderr, turned into the plain text of its error records.

powershell.exe started with -EncodedCommand and a redirected stderr writes its error, warning and
progress records there as ``#< CLIXML`` followed by an ``<Objs>`` document (CR/LF and other
characters escaped as ``_xHHHH_``); what a script writes with ``[Console]::Error`` arrives as
plain text around it. Only error records and plain text are errors; progress, warning, verbose
and information records are dropped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

HEADER = "#< CLIXML"
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_NS = "{http://schemas.microsoft.com/powershell/2004/04}"


def unescape(text: str) -> str:
    """``_x000D__x000A_`` -> CR LF (PowerShell's serializer escapes XML-unsafe characters)."""
    return _ESCAPE.sub(lambda found: chr(int(found.group(1), 16)), text)


def _errors(document: str) -> str | None:
    try:
        root = ET.fromstring(document)  # the host serializer output
    except ET.ParseError:
        return None
    return "".join(
        unescape(node.text or "")
        for node in root.iter()
        if node.tag in (_NS + "S", "S") and node.get("S") == "Error"
    )


def plain_stderr(text: str) -> str:
    """``text`` with every CLIXML document replaced by the text of its error records (and then
    stripped); text without one comes back unchanged."""
    if HEADER not in text:
        return text
    out: list[str] = []
    rest = text
    while (start := rest.find(HEADER)) >= 0:
        out.append(rest[:start])
        body = rest[start + len(HEADER) :].lstrip("\r\n")
        end = body.find("</Objs>")
        if end < 0:
            return "".join(out) + rest[start:]  # not a whole document: keep it as it came
        errors = _errors(body[: end + len("</Objs>")])
        out.append(errors if errors is not None else rest[start : start + len(HEADER)] + body)
        if errors is None:
            return "".join(out)
        rest = body[end + len("</Objs>") :]
    out.append(rest)
    return "".join(out).strip()
