"""fstab lines (guest/linux.py through formats/fstab.py) against util-linux's own parser:
whatever the source, target and options, findmnt --tab-file reads back exactly one entry with
exactly those fields, the user's own lines stay as they were, and vmshare's own reader of
fstab and /proc/mounts (fstab.parse_table) agrees with findmnt."""

from __future__ import annotations

import json
import subprocess
import tempfile

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.property import hostile
from vmshare.errors import UsageError
from vmshare.formats import fstab, ownedblock
from vmshare.spec import NfsHost, ShareSpec, SmbHost

RENDERER = "fstab"
USER_FSTAB = "# <file system> <mount point> <type> <options> <dump> <pass>\n" + (
    "UUID=1234 / ext4 errors=remount-ro 0 1\n/dev/sda2 none swap sw 0 0\n"
)
FSTYPES = ["nfs4", "nfs", "cifs", "virtiofs", "9p", "vboxsf", "fuse.vmhgfs-fuse", "vmhgfs"]
good_option = st.from_regex(r"[A-Za-z0-9_.=:/+@-]{1,20}", fullmatch=True)
option = st.one_of(good_option, good_option, hostile.nonempty)


def findmnt(text: str) -> list[tuple[str, str, str, str]]:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".fstab") as f:
        f.write(text)
        f.flush()
        argv = ["findmnt", "--list", "--json", "--tab-file", f.name]
        argv += ["-o", "SOURCE,TARGET,FSTYPE,OPTIONS"]
        out = subprocess.run(argv, capture_output=True, check=True, timeout=30, text=True).stdout
    rows = json.loads(out)["filesystems"] if out.strip() else []
    return [(r["source"], r["target"], r["fstype"], r["options"]) for r in rows]


USER_ROWS = findmnt(USER_FSTAB)


@given(
    source=hostile.nonempty,
    target=hostile.path,
    fstype=st.sampled_from(FSTYPES),
    options=st.lists(option, min_size=1, max_size=4),
)
@example(source="host:/srv/a b", target="/mnt/x\ty", fstype="nfs4", options=["rw"])
@example(
    source="//h/s", target="/mnt/a\u2028b", fstype="cifs", options=["rw"]
)  # a line break to Python
@example(source="//h/s", target="/mnt/\\040x", fstype="cifs", options=["rw"])
@example(source="//h/s", target="/mnt/x\xa0y", fstype="cifs", options=["rw"])
def test_an_entry_reads_back_as_exactly_its_fields(source, target, fstype, options):
    hostile.tally(RENDERER)
    try:
        line = fstab.render_entry(fstab.MountEntry(source, target, fstype, tuple(options)))
        text = fstab.with_entry(USER_FSTAB, "vmshare-0123", line)
        text = fstab.with_entry(text, "vmshare-4567", "//h/other /mnt/other cifs ro 0 0")
    except (ValueError, UsageError):
        # refused: NUL or CR (the spec refuses every control character up front), an option
        # fstab cannot hold, or a line that would be a comment
        assert (
            any(c in source + target for c in "\0\r")
            or any(not fstab_option_ok(o) for o in options)
            or source.startswith("#")
        )
        return
    rows = findmnt(text)
    assert rows[: len(USER_ROWS)] == USER_ROWS
    assert rows[len(USER_ROWS) :] == [
        (source, target, fstype, ",".join(options)),
        ("//h/other", "/mnt/other", "cifs", "ro"),
    ]
    assert fstab.block_entries(text) == {
        "vmshare-0123": line,
        "vmshare-4567": "//h/other /mnt/other cifs ro 0 0",
    }
    assert (
        ownedblock.without_entry(ownedblock.without_entry(text, "vmshare-0123"), "vmshare-4567")
        == USER_FSTAB
    )


def fstab_option_ok(option: str) -> bool:
    return bool(option) and not any(
        c.isspace() or c in ",\\" or ord(c) < 32 or c == "\x7f" for c in option
    )


@given(source=hostile.nonempty, target=hostile.path, fstype=st.sampled_from(FSTYPES))
@example(source="//h/s", target="/mnt/x\xa0y", fstype="cifs")
@example(source="//h/s", target="/mnt/x\u2028y", fstype="cifs")
@example(source="//h/s", target="/mnt/x\x85y", fstype="cifs")
def test_vmshares_reader_agrees_with_findmnt(source, target, fstype):
    """/proc/mounts and fstab escape only space, tab, newline and backslash; vmshare must read
    the line the way util-linux does, whatever else the names hold."""
    hostile.tally(RENDERER)
    if "\0" in source + target or source.startswith("#"):
        return
    line = " ".join([fstab.escape(source), fstab.escape(target), fstype, "rw,relatime", "0", "0"])
    text = USER_FSTAB + line + "\n"
    parsed = [(e.source, e.target, e.fstype, ",".join(e.options)) for e in fstab.parse_table(text)]
    assert parsed == findmnt(text)


@pytest.mark.parametrize("field", ["", "\0"])
def test_fields_that_cannot_be_written_are_refused(field):
    with pytest.raises(ValueError):
        fstab.render_entry(fstab.MountEntry(field or "", "/mnt/x", "nfs", ("rw",)))


@given(options=st.lists(option, max_size=4), kind=st.sampled_from(["nfs", "smb", "share"]))
@example(options=["rw,exec"], kind="nfs")
@example(options=["x\\054exec"], kind="smb")
def test_mount_options_from_settings_fit_an_fstab_line(options, kind):
    """host.toml's [nfs]/[smb] mount_options and a share's own reach the guest's mount -o and
    its fstab line: each is refused up front or fits there as one option."""
    hostile.tally(RENDERER)
    try:
        if kind == "nfs":
            accepted = NfsHost(mount_options=options).mount_options
        elif kind == "smb":
            accepted = SmbHost(mount_options=options).mount_options
        else:
            accepted = ShareSpec(source="/srv", vm="v", target="/mnt", mount_options=options)
            accepted = accepted.mount_options
    except ValueError:  # pydantic's ValidationError: the spec error names the option
        return
    assert accepted == [o for item in options for o in item.split(",") if o]
    line = fstab.render_entry(fstab.MountEntry("//h/s", "/mnt/x", "cifs", ("rw", *accepted)))
    assert findmnt(line + "\n") == [("//h/s", "/mnt/x", "cifs", ",".join(["rw", *accepted]))]
