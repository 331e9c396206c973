"""Samba share sections (protocols/smb.py) with hostile paths and host user/group names, read
back by Samba's own parser (``testparm -s``): each share is exactly one section with exactly its
path, users and access, and no value adds a parameter, section or include."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.property import hostile
from vmshare import hostexec
from vmshare.errors import HostCommandError, UsageError
from vmshare.formats import ownedblock
from vmshare.protocols import smb
from vmshare.secret_value import Secret
from vmshare.spec import SmbHost

RENDERER = "smb.conf"
GLOBAL = "[global]\n\tworkgroup = TEST\n"
host_name = st.one_of(st.sampled_from(["user", "domain users", "x.y-z"]), hostile.nonempty)


def read_by_testparm(text: str) -> dict[str, dict[str, str]]:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".conf") as f:
        f.write(text)
        f.flush()
        out = subprocess.run(
            ["testparm", "-s", "--suppress-prompt", f.name],
            capture_output=True, check=True, timeout=30, text=True,
        ).stdout  # fmt: skip
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in out.split("\n"):
        if line.startswith("["):
            current = sections.setdefault(line[1:-1], {})
        elif " = " in line:
            key, _, value = line.strip().partition(" = ")
            current[key] = value
    return sections


GLOBAL_READ = read_by_testparm(GLOBAL)["global"]


def share(entry_id: str, path: str, user: str, group: str, readonly: bool) -> smb.SmbShare:
    return smb.SmbShare(entry_id, path, "10.0.2.15", readonly, "vmshare", user, group, True)


# testparm is a subprocess of ~0.1 s: a fifth of the profile's examples, up to three shares each
@settings(max_examples=max(10, settings.default.max_examples // 5))
@given(
    paths=st.lists(hostile.path, min_size=1, max_size=3),
    user=host_name,
    group=host_name,
    readonly=st.booleans(),
)
@example(paths=["/srv/a\u2028include = /etc/passwd"], user="u", group="g", readonly=True)
@example(paths=["/srv/x\n[global]\n\tguest ok = yes"], user="u", group="g", readonly=True)
@example(paths=['/srv/"quoted"'], user="u", group="g", readonly=True)
@example(paths=["/srv/a;b#c"], user="u", group="g", readonly=True)
@example(paths=["/srv/a"], user="%U", group="g", readonly=True)
@example(paths=["/srv/a"], user=" root", group="g", readonly=True)
@example(paths=["/"], user="\\", group="user", readonly=False)  # swallowed force group
@example(paths=["/"], user="user", group="x\\", readonly=False)  # swallowed read only
def test_sections_read_back_exactly(paths, user, group, readonly):
    hostile.tally(RENDERER)
    shares = [share(f"vmshare-{i}", p, user, group, readonly) for i, p in enumerate(paths)]
    text = GLOBAL
    try:
        for item in shares:
            text = ownedblock.with_entry(text, item.entry_id, smb.render_section(item))
    except UsageError:
        refused_path = any(refused(p, path=True) for p in paths)
        assert refused_path or refused(user) or refused(group)
        return
    assert (
        not any(refused(p, path=True) for p in paths) and not refused(user) and not refused(group)
    )
    parsed = read_by_testparm(text)
    assert list(parsed) == ["global", *(s.entry_id for s in shares)]
    assert parsed["global"] == GLOBAL_READ
    for item in shares:
        section = parsed[item.entry_id]
        assert section["path"] == item.path
        assert section["valid users"] == "vmshare"
        assert section["hosts allow"] == "10.0.2.15"
        assert section["force user"] == user
        assert section["force group"] == group
        assert section.get("read only", "Yes") == ("Yes" if readonly else "No")
        assert section.get("guest ok", "No") == "No"


def refused(value: str, *, path: bool = False) -> bool:
    """What smb.check_path / smb._value refuse: a line break or NUL, '%' (a substitution),
    blanks at either end, a trailing backslash (it continues the line); in a path also runs
    of whitespace."""
    if any(c in value for c in "\n\r\0%") or value != value.strip() or value.endswith("\\"):
        return True
    return path and (any(c.isspace() and c != " " for c in value) or "  " in value)


RENDERER_ACCOUNT = "Samba account argv"


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(account=st.one_of(hostile.text, st.sampled_from(["-o", "--system", "vmshare"])))
@example(account="--non-unique")
def test_samba_account_commands_keep_the_account_one_operand(account, monkeypatch):
    """useradd, smbpasswd, pdbedit, id and userdel get the account from host.toml's [smb]
    account: refused there unless it is a plain user name, then the last element of each argv."""
    hostile.tally(RENDERER_ACCOUNT)
    try:
        settings_ = SmbHost(account=account)
    except ValueError:
        return
    assert not account.startswith("-")
    calls: list[list[str]] = []

    def run(argv, **kwargs):
        calls.append(list(argv))
        return hostexec.CommandResult(argv=list(argv), returncode=1, stdout=b"", stderr=b"")

    monkeypatch.setattr(hostexec, "run", run)
    exporter = smb.SambaExporter(settings_)
    with contextlib.suppress(HostCommandError):
        exporter.ensure_account(Secret("pw"))
    exporter.remove_account(True, True)
    assert calls
    for argv in calls:
        assert argv[-1] == account and account not in argv[1:-1]
