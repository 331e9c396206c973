"""NFS export entries (protocols/nfs.py) with hostile paths, read back by each server's rules
and compared with the input: kernel exportfs (nfs-utils' xgettok and xgetc ported below),
nfs-ganesha (its config lexer: tests/contract/formats.py), macOS exports(5) (double quotes with
backslash escapes). Each entry is one export of exactly that path to exactly the one client,
inside vmshare's block, and stays so when another entry is added next to it."""

from __future__ import annotations

import re
import shlex

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.contract.formats import ganesha_blocks
from tests.property import hostile
from vmshare.errors import UsageError
from vmshare.formats import ownedblock
from vmshare.protocols import nfs
from vmshare.spec import NfsHost

RENDERER_KERNEL, RENDERER_GANESHA, RENDERER_MACOS = "kernel exports", "ganesha", "macOS exports"
OTHER = nfs.NfsExport("vmshare-other", "/srv/other", "10.0.2.16", True, 1, 1)
clients = st.sampled_from(["10.0.2.15", "192.168.122.0/24", "fd00::5"])


def export(path: str, client: str) -> nfs.NfsExport:
    return nfs.NfsExport("vmshare-0123456789abcdef", path, client, False, 1000, 100)


def with_neighbour(exporter: nfs.NfsExporter, entry: nfs.NfsExport) -> tuple[str, str]:
    """The file text holding ``entry`` and another export added after it, and the entry as
    the file gives it back."""
    body = exporter.render(entry)
    text = ownedblock.with_entry("# the admin's own line\n", entry.entry_id, body)
    text = ownedblock.with_entry(text, OTHER.entry_id, exporter.render(OTHER))
    assert ownedblock.entries(text)[entry.entry_id] == body
    return text, body


def _isspace(byte: int) -> bool:  # C isspace() in the C locale
    return byte in b" \t\n\v\f\r"


def exportfs_lines(text: str) -> list[list[bytes]]:
    """nfs-utils support/nfs/xio.c: xgetc turns backslash-newline into a blank, xgettok splits
    at isspace() outside double quotes (which it drops) and decodes \\ooo; getexportent skips
    lines starting with '#'. One list of tokens per logical line."""
    data = text.encode("utf-8")
    lines: list[list[bytes]] = []
    tokens: list[bytes] = []
    tok, quoted, i = bytearray(), False, 0
    while i <= len(data):
        c = data[i] if i < len(data) else None
        if c == ord("\\") and i + 1 < len(data) and data[i + 1] == ord("\n"):
            c, i = ord(" "), i + 1
            while i + 1 < len(data) and data[i + 1] in b" \t":
                i += 1
        i += 1
        if c is None or (not quoted and (c == ord("\n") or _isspace(c))):
            if tok:
                tokens.append(bytes(tok))
                tok = bytearray()
            if c is None or c == ord("\n"):
                if tokens and not tokens[0].startswith(b"#"):
                    lines.append(tokens)
                tokens = []
            continue
        if c == ord('"'):
            quoted = not quoted
            continue
        tok.append(c)
        if len(tok) >= 4 and tok[-4] == ord("\\") and all(48 <= b <= 55 for b in tok[-3:]):
            value = int(tok[-3:], 8)
            if value < 256:
                del tok[-4:]
                tok.append(value)
    return lines


@given(path=hostile.path, client=clients)
@example(path="/srv/a\u2028b", client="10.0.2.15")
@example(path="/srv/x 10.0.0.0/8(rw,no_root_squash)", client="10.0.2.15")
@example(path='/srv/"quoted" \\\n*(rw)', client="10.0.2.15")
@example(path="/srv/\\000", client="10.0.2.15")  # exportfs decoded \134 then \000: a NUL
def test_kernel_exports_line_is_one_path_and_one_client(path, client):
    hostile.tally(RENDERER_KERNEL)
    exporter = nfs.KernelNfsExporter(NfsHost(exporter="kernel"))
    try:
        text, body = with_neighbour(exporter, export(path, client))
    except UsageError:
        assert re.search(r"\\[0-3][0-7]{2}", path)
        return
    assert "\n" not in body
    lines = exportfs_lines(text)
    assert len(lines) == 2
    (exported, grant), (_, other_grant) = lines
    assert exported == path.encode("utf-8")
    assert grant.startswith(f"{client}(".encode()) and grant.endswith(b")")
    assert b"(" not in grant[len(client) + 1 :]
    assert other_grant.startswith(b"10.0.2.16(")


@given(path=hostile.path, client=clients, pseudo=st.sampled_from(["/vmshare", '/a b/"c\\']))
@example(path='/srv/x"; Path = "/etc', client="10.0.2.15", pseudo="/vmshare")
@example(path="/srv/x\\", client="10.0.2.15", pseudo="/vmshare")
@example(path="/srv/x\u2028}", client="10.0.2.15", pseudo="/vmshare")
def test_ganesha_export_block_keeps_its_path(path, client, pseudo):
    hostile.tally(RENDERER_GANESHA)
    exporter = nfs.GaneshaExporter(NfsHost(exporter="ganesha", pseudo_root=pseudo))
    entry = export(path, client)
    try:
        text, _ = with_neighbour(exporter, entry)
    except UsageError:
        assert any(c in path for c in "\n\r\0")
        return
    blocks = ganesha_blocks(text)
    assert [name for name, _ in blocks] == ["EXPORT", "EXPORT"]
    body = blocks[0][1]
    assert body["PATH"] == path
    assert body["PSEUDO"] == exporter.remote_path(entry)
    assert body["SQUASH"] == "All_Squash"
    assert [c["CLIENTS"] for c in body["CLIENT"]] == [client]  # type: ignore[index]
    assert blocks[1][1]["PATH"] == "/srv/other"


@given(path=hostile.path, client=st.sampled_from(["10.0.2.15", "192.168.122.0/24"]))
@example(path='/srv/a" -maproot=0 10.0.0.1 "', client="10.0.2.15")
@example(path="/srv/a\\", client="10.0.2.15")
def test_macos_exports_line_keeps_its_path(path, client):
    hostile.tally(RENDERER_MACOS)
    exporter = nfs.MacNfsExporter(NfsHost(exporter="macos"))
    try:
        text, body = with_neighbour(exporter, export(path, client))
    except UsageError:
        assert any(c in path for c in "\n\r\0")  # exports(5) is read line by line
        return
    # macOS mountd: a quoted path with backslash escapes, then blank-separated options and hosts
    lines = [ln for ln in text.split("\n") if ln and not ln.startswith("#")]
    assert lines == [body, exporter.render(OTHER)]
    hosts = ["-network=192.168.122.0", "-mask=255.255.255.0"] if "/" in client else [client]
    assert shlex.split(body, posix=True) == [path, "-mapall=1000:100", *hosts]


@pytest.mark.parametrize("name", ["a b.conf", 'a"b.conf', "a\nb.conf"])
def test_ganesha_include_of_a_file_it_cannot_name_is_refused(tmp_path, name):
    """ganesha's %include line takes one double-quoted path: a file vmshare cannot name there
    (host.toml's exports_file) is refused before the main config changes."""
    main = tmp_path / "ganesha.conf"
    main.write_text("NFS_CORE_PARAM { Protocols = 4; }\n")
    settings = NfsHost(
        exporter="ganesha", ganesha_config=str(main), exports_file=str(tmp_path / name)
    )
    with pytest.raises(UsageError):
        nfs.GaneshaExporter(settings).prepare()
    assert main.read_text() == "NFS_CORE_PARAM { Protocols = 4; }\n"
