"""Parsers the exporter contract reads files back with: the server's own where it runs here
(Samba's testparm), else a reading of the format's documented syntax (exports(5), ganesha's
config lexer, macOS exports(5))."""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile


def kernel_exports_paths(text: str) -> list[str]:
    """exports(5): one export per line, the path first, any byte as \\ooo."""
    paths = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        raw = line.split()[0]
        decoded = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), raw.encode())
        paths.append(decoded.decode("utf-8"))
    return paths


def macos_exports_paths(text: str) -> list[str]:
    """macOS exports(5): one export per line, a path in double quotes with \\ escapes first."""
    paths = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        paths.append(shlex.split(line, comments=True)[0])
    return paths


_GANESHA_TOKEN = re.compile(r'\s+|#[^\n]*|"((?:[^"\\]|\\.)*)"|([{};=])|([^\s{};="#]+)', re.S)


def ganesha_blocks(text: str) -> list[tuple[str, dict[str, object]]]:
    """Top-level blocks of a ganesha config: (name, {key: value or [sub-blocks]}); strings
    decoded as ganesha's lexer does (\\\\ and \\" escapes)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _GANESHA_TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"ganesha config: cannot read {text[pos : pos + 20]!r}")
        pos = m.end()
        if m[1] is not None:
            tokens.append(("str", re.sub(r"\\(.)", r"\1", m[1], flags=re.S)))
        elif m[2]:
            tokens.append(("sym", m[2]))
        elif m[3]:
            tokens.append(("word", m[3]))

    def block(i: int) -> tuple[dict[str, object], int]:
        body: dict[str, object] = {}
        while i < len(tokens) and tokens[i] != ("sym", "}"):
            name = tokens[i][1]
            if tokens[i + 1] == ("sym", "{"):
                sub, i = block(i + 2)
                body.setdefault(name.upper(), []).append(sub)  # type: ignore[union-attr]
                i += 1  # the closing brace
            elif tokens[i + 1] == ("sym", "="):
                if name.upper() in body:
                    raise ValueError(f"ganesha config: {name} set twice in one block")
                body[name.upper()] = tokens[i + 2][1]
                if tokens[i + 3] != ("sym", ";"):
                    raise ValueError(f"ganesha config: no ; after {name}")
                i += 4
            else:
                raise ValueError(f"ganesha config: unexpected {tokens[i + 1]}")
        return body, i

    top: list[tuple[str, dict[str, object]]] = []
    i = 0
    while i < len(tokens):
        name = tokens[i][1]
        if tokens[i + 1] != ("sym", "{"):
            raise ValueError(f"ganesha config: {name} outside a block")
        body, i = block(i + 2)
        if i >= len(tokens):
            raise ValueError("ganesha config: unclosed block")
        top.append((name.upper(), body))
        i += 1
    return top


def ganesha_export_paths(text: str) -> list[str]:
    paths = []
    for name, body in ganesha_blocks(text):
        if name != "EXPORT":
            raise ValueError(f"ganesha exports file: a {name} block")
        paths.append(str(body["PATH"]))
    return paths


def samba_share_paths(text: str) -> list[str]:
    """The share sections' paths as Samba's own parser (testparm) reads the file."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(text)
        f.flush()
        proc = subprocess.run(
            ["testparm", "-s", "--suppress-prompt", f.name],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    paths, section = [], None
    for line in proc.stdout.splitlines():
        if line.startswith("["):
            section = line.strip()[1:-1]
        elif section not in (None, "global") and line.strip().startswith("path = "):
            paths.append(line.strip()[len("path = ") :])
    return paths
