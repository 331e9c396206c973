"""The one list of root commands (host/privileged.py) covers every command vmshare runs as root,
and the sudoers lines made of it are valid sudoers."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

import vmshare
from vmshare import hostexec
from vmshare.errors import PrivilegeRefused, UsageError
from vmshare.host import privileged
from vmshare.spec import HostSettings, NfsHost, SmbHost

SOURCE = Path(vmshare.__file__).parent


def every_exporter() -> list[HostSettings]:
    return [HostSettings(nfs=NfsHost(exporter=name)) for name in ("kernel", "ganesha", "macos")]


def listed() -> list[tuple[str, ...]]:
    """Every exporter's list, on Linux and macOS hosts (the file flush differs)."""
    found = []
    for bsd in (False, True):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(privileged, "BSD_SYNC", bsd)
            found += [c.argv for s in every_exporter() for c in privileged.commands(s)]
    return found


def privileged_calls() -> list[tuple[str, list[ast.expr]]]:
    """(where, argv items) of every ``hostexec.run([...], privileged=True)`` in vmshare."""
    found = []
    for file in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "hostexec.run"):
                continue
            flag = [k for k in node.keywords if k.arg == "privileged"]
            if flag and not (isinstance(flag[0].value, ast.Constant) and not flag[0].value.value):
                where = f"{file.relative_to(SOURCE)}:{node.lineno}"
                argv = node.args[0]
                assert isinstance(argv, ast.List), f"{where}: a root command's argv is a literal"
                found.append((where, argv.elts))
    return found


def matches(items: list[ast.expr], command: tuple[str, ...]) -> bool:
    """Whether a literal argv can be the listed command: its constants where they stand."""
    if any(isinstance(item, ast.Starred) for item in items):
        return isinstance(items[0], ast.Constant) and items[0].value == command[0]
    if len(items) != len(command):
        return False
    return all(
        not isinstance(item, ast.Constant) or item.value == word
        for item, word in zip(items, command, strict=True)
    )


def test_every_command_vmshare_runs_as_root_is_in_the_one_list():
    calls = privileged_calls()
    assert len(calls) >= 12  # the walk sees them (exportfs, nfsd, pkill, smbcontrol, files...)
    commands = listed()
    missing = [where for where, items in calls if not any(matches(items, c) for c in commands)]
    assert missing == []


def test_the_list_names_nothing_vmshare_does_not_run():
    calls = privileged_calls()
    unused = [c for c in listed() if not any(matches(items, c) for _, items in calls)]
    assert unused == []


@pytest.mark.parametrize("settings", every_exporter(), ids=["kernel", "ganesha", "macos"])
def test_the_sudoers_lines_are_valid_sudoers(settings, tmp_path):
    text = privileged.sudoers(settings, "alice")
    path = tmp_path / "vmshare.sudoers"
    path.write_text(text)
    check = subprocess.run(["visudo", "-cf", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert text.rstrip().endswith(
        "alice ALL=(root) NOPASSWD: VMSHARE_NFS, VMSHARE_SMB, VMSHARE_FILES"
    )
    assert " ALL " not in text.replace("alice ALL=", "")  # no command is left open


@pytest.mark.parametrize(
    "smb_conf", ["/etc/samba/my smb.conf", '/etc/samba/"smb".conf', "/etc/samba/smb\nx.conf"]
)
def test_a_path_sudoers_cannot_name_exactly_is_refused_with_a_hint(smb_conf):
    with pytest.raises(UsageError) as caught:
        privileged.sudoers(HostSettings(smb=SmbHost(smb_conf=smb_conf)), "alice")
    assert "host.toml" in (caught.value.hint or "")


def test_a_user_name_sudoers_cannot_hold_is_refused():
    with pytest.raises(UsageError, match="not a user name"):
        privileged.sudoers(HostSettings(), "alice ALL=(ALL) ALL")


def test_preflight_asks_sudo_about_exactly_the_protocols_commands(monkeypatch):
    settings = HostSettings(nfs=NfsHost(exporter="ganesha"))
    asked: list[list[str]] = []

    def sudo_l(argv, **kw):
        asked.append(argv)
        return hostexec.CommandResult(tuple(argv), 1 if "smbcontrol" in argv[4] else 0, b"", b"")

    monkeypatch.setattr(privileged.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(hostexec, "run", sudo_l)
    privileged.preflight(settings, {"nfs"})  # every NFS command allowed
    nfs = [c for c in privileged.commands(settings) if c.protocol == "nfs"]
    assert len(asked) == len(nfs) and all(a[:4] == ["sudo", "-n", "-l", "--"] for a in asked)
    with pytest.raises(PrivilegeRefused, match=r"sudo would refuse 2 of the .* SMB"):
        privileged.preflight(settings, {"smb"})
    monkeypatch.setattr(privileged.os, "geteuid", lambda: 0)
    asked.clear()
    privileged.preflight(settings, {"nfs", "smb"})  # root: nothing to ask
    assert asked == []
