import json
import subprocess

import pytest

from vmshare.formats import fstab, ownedblock

HOSTILE = [
    "/mnt/plain",
    "/mnt/with space",
    "/mnt/tab\there",
    "/mnt/new\nline",
    "/mnt/back\\slash",
    '/mnt/it\'s "quoted"',
    "/mnt/$(rm -rf ~);`id`",
    "/mnt/#hash",
    "/mnt/‘curly’",
    "/mnt/\\040literal",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_escape_round_trips(target):
    assert fstab.unescape(fstab.escape(target)) == target


@pytest.mark.parametrize("target", HOSTILE)
def test_rendered_entry_parses_back_with_libmount(tmp_path, target):
    line = fstab.render_entry(fstab.MountEntry("tag", target, "virtiofs", ("rw", "nofail")))
    assert "\n" not in line
    table = tmp_path / "fstab"
    table.write_text(fstab.with_entry("/dev/vda / ext4 defaults 0 1\n", "tag", line))
    # findmnt parses with libmount, the parser mount(8) itself uses
    found = json.loads(
        subprocess.run(
            ["findmnt", "--tab-file", str(table), "--json", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )["filesystems"]
    assert [f["target"] for f in found] == ["/", target]
    assert found[1]["source"] == "tag" and found[1]["fstype"] == "virtiofs"
    assert fstab.parse_table(table.read_text())[1].target == target


def test_nul_is_refused():
    with pytest.raises(ValueError):
        fstab.escape("a\x00b")


def test_block_add_replace_remove_keeps_every_other_byte():
    original = (
        "# my fstab\n/dev/vda / ext4 defaults 0 1\n\n# keep me\nproc /proc proc defaults 0 0\n"
    )
    one = fstab.with_entry(original, "vmshare-1", "t1 /mnt/1 virtiofs rw,nofail 0 0")
    two = fstab.with_entry(one, "vmshare-2", "t2 /mnt/2 9p ro,nofail 0 0")
    assert two.startswith(original)
    assert fstab.block_entries(two) == {
        "vmshare-1": "t1 /mnt/1 virtiofs rw,nofail 0 0",
        "vmshare-2": "t2 /mnt/2 9p ro,nofail 0 0",
    }
    replaced = fstab.with_entry(two, "vmshare-1", "t1 /mnt/1 virtiofs ro,nofail 0 0")
    assert fstab.block_entries(replaced)["vmshare-1"].endswith("ro,nofail 0 0")
    assert replaced.count(ownedblock.BEGIN) == 1
    back = fstab.without_entry(fstab.without_entry(replaced, "vmshare-2"), "vmshare-1")
    assert back == original
    assert fstab.without_entry(original, "absent") == original


def test_lines_outside_the_block_are_never_taken_for_entries():
    text = "# vmshare:fake\nfake /x virtiofs rw 0 0\n"
    assert fstab.block_entries(text) == {}
    assert fstab.without_entry(text, "fake") == text


@pytest.mark.parametrize(
    ("entry_id", "line"),
    [("a b", "x / y rw 0 0"), ("ok", "x /\n# END vmshare"), ("ok", "# comment"), ("x\n", "l")],
)
def test_block_refuses_entries_that_could_escape_it(entry_id, line):
    with pytest.raises(ValueError):
        fstab.with_entry("", entry_id, line)


def test_render_refuses_bad_options():
    with pytest.raises(ValueError):
        fstab.render_entry(fstab.MountEntry("t", "/m", "virtiofs", ("rw", "a b")))


def test_parse_proc_mounts_unescapes():
    text = "tag /mnt/with\\040space virtiofs rw,relatime 0 0\nproc /proc proc rw 0 0\n"
    entries = fstab.parse_table(text)
    assert entries[0].target == "/mnt/with space"
    assert entries[0].options == ("rw", "relatime")
