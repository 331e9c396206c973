"""Export files for servers that cannot run here (kernel nfsd, macOS) checked line by line,
ganesha's blocks and Samba sections checked against hostile paths (testparm parses Samba's)."""

import re
import subprocess

import pytest

from vmshare.errors import UsageError
from vmshare.formats import ownedblock
from vmshare.protocols import nfs, smb
from vmshare.spec import NfsHost, SmbHost

HOSTILE = [
    "/srv/plain",
    "/srv/with space",
    '/srv/dq"uote',
    "/srv/it's",
    "/srv/#hash",
    "/srv/semi;colon",
    "/srv/back\\slash",
    "/srv/*(rw,no_root_squash)",
    "/srv/ 10.0.0.0/8(rw)",
    "/srv/ünï‘c’",
    "/srv/[section]",
    "/srv/include = /etc/passwd",
    "/srv/{brace}",
]


def exportfs_tokens(line: str) -> list[str]:
    """Split an exports(5) line the way nfs-utils' xgettok does: whitespace separates,
    double quotes toggle quoting, \\ooo is one byte."""
    tokens, current, quoted, i = [], bytearray(), False, 0
    data = line.encode()
    while i < len(data):
        c = data[i]
        if c == ord('"'):
            quoted = not quoted
        elif not quoted and chr(c).isspace():
            if current:
                tokens.append(current.decode())
                current = bytearray()
        elif c == ord("\\") and re.fullmatch(rb"[0-7]{3}", data[i + 1 : i + 4]):
            current.append(int(data[i + 1 : i + 4], 8))
            i += 3
        else:
            current.append(c)
        i += 1
    if current:
        tokens.append(current.decode())
    return tokens


def export(path: str, **kw) -> nfs.NfsExport:
    values = dict(
        entry_id="vmshare-0123456789abcdef",
        path=path,
        client="10.0.2.15",
        readonly=False,
        anonuid=1000,
        anongid=100,
    )
    values.update(kw)
    return nfs.NfsExport(**values)


@pytest.mark.parametrize("path", HOSTILE)
def test_kernel_exports_line_has_exactly_one_path_and_one_client(path):
    line = nfs.KernelNfsExporter(NfsHost()).render(export(path))
    assert "\n" not in line
    tokens = exportfs_tokens(line)
    assert len(tokens) == 2, tokens
    assert tokens[0] == path
    client, options = re.fullmatch(r"([^(]+)\((.*)\)", tokens[1]).groups()
    assert client == "10.0.2.15"
    assert options.split(",")[:5] == [
        "rw",
        "sync",
        "no_subtree_check",
        "all_squash",
        "anonuid=1000",
    ]
    assert "*" not in client


def test_kernel_readonly_and_stable_fsid():
    first = nfs.KernelNfsExporter(NfsHost()).render(export("/srv/x", readonly=True))
    again = nfs.KernelNfsExporter(NfsHost()).render(export("/srv/x", entry_id="vmshare-other"))
    assert "(ro," in first
    fsid = re.search(r"fsid=([0-9a-f-]+)", first).group(1)
    assert fsid == re.search(r"fsid=([0-9a-f-]+)", again).group(1)  # per path, not per share
    assert fsid != re.search(
        r"fsid=([0-9a-f-]+)", nfs.KernelNfsExporter(NfsHost()).render(export("/srv/y"))
    ).group(1)


def mac_tokens(line: str) -> list[str]:
    """macOS exports(5): double quotes group, backslash escapes the next character."""
    tokens, current, quoted, escaped, started = [], [], False, False, False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
            started = True
        elif ch == '"':
            quoted = not quoted
            started = True
        elif ch.isspace() and not quoted:
            if started:
                tokens.append("".join(current))
                current, started = [], False
        else:
            current.append(ch)
            started = True
    if started:
        tokens.append("".join(current))
    return tokens


@pytest.mark.parametrize("path", HOSTILE)
def test_macos_exports_line(path):
    line = nfs.MacNfsExporter(NfsHost()).render(export(path, readonly=True))
    assert mac_tokens(line) == [path, "-ro", "-mapall=1000:100", "10.0.2.15"]


def test_macos_network_client_uses_network_and_mask():
    line = nfs.MacNfsExporter(NfsHost()).render(export("/srv/x", client="192.168.56.0/24"))
    assert mac_tokens(line)[-2:] == ["-network=192.168.56.0", "-mask=255.255.255.0"]


def ganesha_strings(block: str, key: str) -> list[str]:
    """Values of ``key = "..."`` decoded as ganesha's lexer does (backslash escapes)."""
    raw = re.findall(key + r' = "((?:[^"\\]|\\.)*)";', block)
    return [re.sub(r"\\(.)", r"\1", value) for value in raw]


@pytest.mark.parametrize("path", HOSTILE)
def test_ganesha_block_is_one_export_with_the_exact_path(path):
    block = nfs.GaneshaExporter(NfsHost(pseudo_root="/vmshare")).render(export(path))
    assert block.count("EXPORT {") == 1 and block.count("CLIENT {") == 1
    assert ganesha_strings(block, "Path") == [path]
    assert ganesha_strings(block, "Pseudo") == ["/vmshare/vmshare-0123456789abcdef"]
    assert block.count("\n") == 14  # no line added
    assert "\tAttr_Expiration_Time = 0;" in block  # host edits reach the guest at once
    assert "Clients = 10.0.2.15;" in block and "Access_Type = RW; }" in block
    assert "Squash = All_Squash;" in block and "Anonymous_Uid = 1000;" in block


def test_ganesha_export_id_changes_with_the_path():
    assert export("/srv/a").export_number != export("/srv/b").export_number


def test_export_numbers_are_stable_and_in_range():
    numbers = {export("/x", entry_id=f"vmshare-{i:016x}").export_number for i in range(500)}
    assert all(1000 <= n < 61000 for n in numbers) and len(numbers) > 490


def section(path: str, **kw) -> smb.SmbShare:
    values = dict(
        entry_id="vmshare-0123456789abcdef",
        path=path,
        client="127.0.0.1",
        readonly=True,
        account="vmshare",
        force_user="root",
        force_group="root",
        encrypt=True,
    )
    values.update(kw)
    return smb.SmbShare(**values)


SMB_OK = [p for p in HOSTILE if "%" not in p]


def run_testparm(tmp_path, text: str) -> str:
    conf = tmp_path / "smb.conf"
    conf.write_text("[global]\n\tserver role = standalone server\n" + text)
    return subprocess.run(
        ["testparm", "-s", "--suppress-prompt", str(conf)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.parametrize("path", SMB_OK)
def test_samba_section_parses_to_exactly_one_share_with_the_exact_path(tmp_path, path):
    body = smb.render_section(section(path, readonly=False))
    text = ownedblock.with_entry("", "vmshare-0123456789abcdef", body)
    parsed = run_testparm(tmp_path, text)
    sections = re.findall(r"^\[(.*)\]$", parsed, re.M)
    assert sections == ["global", "vmshare-0123456789abcdef"]
    share = parsed.split("[vmshare-0123456789abcdef]", 1)[1]
    assert re.search(r"^\tpath = (.*)$", share, re.M).group(1) == path
    assert re.search(r"^\tread only = No$", share, re.M)
    assert "hosts allow = 127.0.0.1" in share and "valid users = vmshare" in share
    assert "smb encrypt = required" in share
    assert not re.search(r"^\s*include", share, re.M)
    options = re.findall(r"^\t([a-z ]+) = ", share, re.M)
    assert len(options) == len(set(options))  # nothing injected a second value


@pytest.mark.parametrize(
    "path", ["/srv/50%", "/srv/%U", "/srv/trailing ", " /srv/lead", "/srv/x\\"]
)
def test_samba_refuses_values_it_would_rewrite(path):
    with pytest.raises(UsageError, match="Samba cannot share"):
        smb.render_section(section(path))


def test_samba_refuses_line_breaks_anywhere():
    with pytest.raises(UsageError):
        smb.render_section(section("/srv/x", force_user="root\n[evil]"))


@pytest.mark.parametrize("field", ["force_user", "force_group", "account"])
def test_samba_refuses_a_value_ending_in_a_backslash(field):
    # a trailing backslash continues the line: `force user = x\` swallowed `force group`
    with pytest.raises(UsageError, match="trailing backslash"):
        smb.render_section(section("/srv/x", **{field: "DOMAIN\\"}))


def test_samba_guest_mount_options():
    source, fstype, options = smb.guest_mount(
        section("/srv/x", readonly=False), SmbHost(port=4450), "10.0.2.2", 1000, 100
    )
    assert (source, fstype) == ("//10.0.2.2/vmshare-0123456789abcdef", "cifs")
    assert options[:2] == ["rw", "credentials=/etc/vmshare/vmshare-0123456789abcdef.cred"]
    assert {"vers=3.1.1", "mfsymlinks", "uid=1000", "gid=100", "seal", "port=4450"} <= set(options)
    assert not any("password" in o for o in options)


def test_nfs_guest_mount_options():
    exporter = nfs.GaneshaExporter(NfsHost(port=2050))
    source, fstype, options = nfs.guest_mount(export("/srv/x", readonly=True), exporter, "10.0.2.2")
    assert source == "10.0.2.2:/vmshare/vmshare-0123456789abcdef" and fstype == "nfs4"
    assert options[1] == "vers=4.2"
    assert [(f, o[1]) for f, o in nfs.version_fallbacks(options)] == [
        ("nfs4", "vers=4.1"),
        ("nfs", "vers=3"),
    ]
    assert options[0] == "ro" and "hard" in options and "port=2050" in options
    assert "actimeo=1" in options
    assert (
        nfs.guest_mount(export("/srv/x"), nfs.KernelNfsExporter(NfsHost()), "fd00::1")[0]
        == "[fd00::1]:/srv/x"
    )
