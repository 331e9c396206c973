import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmshare.errors import NotFoundError, UsageError
from vmshare.formats import vmx
from vmshare.fsutil import BACKUP_SUFFIX

DATA = Path(__file__).parent / "data" / "vmx"
FIXTURES = sorted(p.name for p in DATA.glob("*.vmx"))

HOSTILE = [
    'x"\nevil.key = "TRUE',
    'x" evil.key = "TRUE',
    "x\r\nevil.key = TRUE",
    "#comment",
    "a = b # c",
    '"',
    "|",
    "|0A",
    "|22",
    "|7c|",
    "ends with |",
    "\t tab and\x0b\x0c\x1b\x7f controls",
    "$(rm -rf ~);`id`",
    "‘curly’ “quotes” \u2028 \u2029 \x85",
    "日本語 ポ emoji 🐧",
    "C:\\Users\\me\\a b",
    "=",
    "",
    "x" * 100_000,
]


def fixture(name):
    return (DATA / name).read_bytes()


def keyset(f):
    return {k.lower() for k in f.keys(prefix="")}


# VMware's own reading of a line (open-vm-tools DictLL_UnmarshalLine), written out again here
# independently of the module's regular expression, to check rendered files against.
def reference_parse(data: bytes) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if data.startswith(vmx.UTF8_BOM):
        data = data[3:]
    for line in data.split(b"\n"):
        line = line.removesuffix(b"\r")
        i = 0
        while i < len(line) and line[i] in b" \t":
            i += 1
        start = i
        while i < len(line) and line[i] not in b"\x00 \t#=":
            i += 1
        name = line[start:i]
        while i < len(line) and line[i] in b" \t":
            i += 1
        if not name or i >= len(line) or line[i] != ord("="):
            continue
        i += 1
        while i < len(line) and line[i] in b" \t":
            i += 1
        if i < len(line) and line[i] == ord('"'):
            end = line.find(b'"', i + 1)
            if end < 0:
                continue
            value, i = line[i + 1 : end], end + 1
        else:
            start = i
            while i < len(line) and line[i] not in b"\x00 \t#":
                i += 1
            value = line[start:i]
        while i < len(line) and line[i] in b" \t":
            i += 1
        if i < len(line) and line[i] != ord("#"):
            continue
        out, j = b"", 0
        while j < len(value):  # Escape_Undo('|')
            if value[j : j + 1] == b"|" and re.fullmatch(rb"[0-9A-Fa-f]{2}", value[j + 1 : j + 3]):
                out += bytes([int(value[j + 1 : j + 3], 16)])
                j += 3
            else:
                out += value[j : j + 1]
                j += 1
        found[name.decode("latin-1").lower()] = out
    return found


# -- parsing and rendering


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_round_trip_byte_for_byte(name):
    data = fixture(name)
    assert vmx.parse(data).render() == data


@pytest.mark.parametrize("name", FIXTURES)
def test_parser_agrees_with_vmware_reference_reading(name):
    f = vmx.parse(fixture(name))
    ref = reference_parse(fixture(name))
    assert keyset(f) == set(ref)
    for key in ref:
        raw = vmx.unescape(f._find(key).escaped)  # the bytes; decoding is checked below
        assert raw == ref[key]


def test_workstation_windows_1252_crlf():
    f = vmx.parse(fixture("workstation-win.vmx"))
    assert f.encoding == "cp1252"
    assert f.get("displayName") == "Entwicklung – Müller"
    assert f.get("DISPLAYNAME") == "Entwicklung – Müller"  # keys match in any case
    assert f.get("annotation") == 'Build box\r\nowner: Müller\r\nsee "README"'
    assert f.get("nvme0:0.fileName").startswith("C:\\Users\\müller\\")
    assert f.get("scsi0:0.redo") == ""
    assert f.get("no.such.key") is None
    assert vmx.shared_folders(f) == {}


def test_fusion_utf8_with_oddities():
    f = vmx.parse(fixture("fusion-mac.vmx"))
    assert f.encoding == "utf-8"
    assert f.get("displayName") == "Débian arm64 — Zoë's box"
    assert f.get("memsize") == "2048"  # `Memsize` comes later: the last one wins
    assert f.get("odd.spacing") == "kept"
    assert f.get("unquoted.value") == "1"
    assert "broken.quote" not in f  # a line VMware cannot read is kept but means nothing
    assert f.keys("sharedfolder0.") == [
        "sharedFolder0." + k
        for k in (
            "present",
            "enabled",
            "readAccess",
            "writeAccess",
            "hostPath",
            "guestName",
            "expiration",
        )
    ]


def test_shift_jis_trail_byte_pipe_is_escaped_like_vmware():
    data = fixture("workstation-sjis.vmx")
    f = vmx.parse(data)
    assert f.get("displayName") == "開発ポータル"
    f.set("displayName", "ポポ")
    assert b'displayName = "\x83|7C\x83|7C"' in f.render()
    assert vmx.parse(f.render()).get("displayName") == "ポポ"


def test_bom_means_utf8_and_is_kept():
    data = vmx.UTF8_BOM + 'displayName = "Zoë"\n'.encode()
    f = vmx.parse(data)
    assert f.get("displayName") == "Zoë"
    assert f.render() == data
    f.set("guestOS", "ubuntu-64")
    assert f.render() == data + b'guestOS = "ubuntu-64"\n'


def test_escape_rule_is_vmwares():
    raw = bytes(range(256))
    escaped = vmx.escape(raw)
    assert vmx.unescape(escaped) == raw
    for b in [*range(0x09), *range(0x0A, 0x20), 0x22, 0x7C, 0x7F]:
        assert b"|%02X" % b in escaped
    assert re.fullmatch(rb'[^"\x00-\x08\x0a-\x1f\x7f]*', escaped)
    assert vmx.unescape(b"|7c|7C|zz|4|") == b"||" + b"|zz|4|"  # lower case hex reads too


# -- changing


@pytest.mark.parametrize("name", FIXTURES)
def test_set_existing_changes_only_that_line(name):
    data = fixture(name)
    f = vmx.parse(data)
    f.set("guestOS", "ubuntu-64")
    old, new = data.split(b"\n"), f.render().split(b"\n")
    assert len(old) == len(new)
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    assert len(changed) <= 1
    assert vmx.parse(f.render()).get("guestOS") == "ubuntu-64"


@pytest.mark.parametrize("name", FIXTURES)
def test_set_new_appends_and_remove_restores(name):
    data = fixture(name)
    f = vmx.parse(data)
    f.set("vmshare.test", "value")
    out = f.render()
    assert out.startswith(data)
    end = b"\r\n" if b"\r\n" in data else b"\n"
    assert out[len(data) :] == b'vmshare.test = "value"' + end
    assert f.remove("vmshare.test")
    assert f.render() == data
    assert not f.remove("vmshare.test")


def test_set_keeps_spacing_and_comment_of_the_line():
    f = vmx.parse(fixture("fusion-mac.vmx"))
    f.set("odd.spacing", 'new "one"')
    assert b'  odd.spacing="new |22one|22"   # a trailing comment\n' in f.render()
    f.set("unquoted.value", "2")
    assert b'unquoted.value = "2"\n' in f.render()


def test_set_changes_the_last_duplicate_and_remove_takes_all():
    f = vmx.parse(b'memsize = "1024"\nMemsize = "2048"\n')
    f.set("MEMSIZE", "4096")
    assert f.render() == b'memsize = "1024"\nMemsize = "4096"\n'
    assert f.get("memsize") == "4096"
    f.remove("memsize")
    assert f.render() == b""


def test_file_without_final_newline_gets_one_before_a_new_key():
    f = vmx.parse(b'a = "1"')
    f.set("b", "2")
    assert f.render() == b'a = "1"\nb = "2"\n'


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_cannot_add_a_key_or_a_line(value):
    data = fixture("fusion-mac.vmx")
    f = vmx.parse(data)
    before = keyset(f)
    f.set("sharedFolder0.hostPath", value)
    f.set("vmshare.new", value)
    out = f.render()
    assert out.count(b"\n") == data.count(b"\n") + 1
    back = vmx.parse(out)
    assert keyset(back) == before | {"vmshare.new"}
    assert back.get("sharedFolder0.hostPath") == value
    assert back.get("vmshare.new") == value
    ref = reference_parse(out)
    assert set(ref) == keyset(back)
    assert ref["vmshare.new"].decode("utf-8") == value


def test_nul_is_refused():
    f = vmx.parse(fixture("fusion-mac.vmx"))
    with pytest.raises(UsageError, match="NUL"):
        f.set("displayName", "a\x00b")
    assert f.render() == fixture("fusion-mac.vmx")


@pytest.mark.parametrize(
    "name,value,encoding",
    [
        ("workstation-win.vmx", "日本", "cp1252"),
        ("workstation-sjis.vmx", "Müller ü", "shift_jis"),
        ("fusion-mac.vmx", "\udcff", "utf-8"),
    ],
)
def test_value_the_encoding_cannot_hold_is_a_clear_error(name, value, encoding):
    data = fixture(name)
    f = vmx.parse(data)
    with pytest.raises(UsageError) as err:
        f.set("displayName", value)
    assert "displayName" in err.value.message and encoding in err.value.message
    assert err.value.hint
    assert f.render() == data


def test_file_without_encoding():
    f = vmx.parse(b'displayName = "plain"\n')
    assert f.encoding is None
    f.set("guestOS", "ubuntu-64")
    with pytest.raises(UsageError, match=r"without \.encoding"):
        f.set("displayName", "Zoë")
    bad = vmx.parse(b'displayName = "M\xfcller"\n')
    with pytest.raises(vmx.VmxError, match=r"declares no \.encoding"):
        bad.get("displayName")
    assert bad.render() == b'displayName = "M\xfcller"\n'


@pytest.mark.parametrize("declared", ["klingon-8", "UTF-16"])
def test_unknown_or_non_ascii_encoding_is_refused(declared):
    with pytest.raises(vmx.VmxError, match="encoding"):
        vmx.parse(f'.encoding = "{declared}"\na = "b"\n'.encode())


@pytest.mark.parametrize("key", ["", "a b", 'a"', "a=b", "a#", "a\nb", "ä", "a/b"])
def test_invalid_keys_are_refused(key):
    f = vmx.parse(b"")
    for call in (lambda: f.set(key, "x"), lambda: f.get(key), lambda: f.remove(key)):
        with pytest.raises(ValueError):
            call()


def test_encoding_key_is_not_changed():
    f = vmx.parse(fixture("fusion-mac.vmx"))
    with pytest.raises(ValueError):
        f.set(".encoding", "windows-1252")
    with pytest.raises(ValueError):
        f.remove(".Encoding")


# -- properties

SAFE_KEY = st.from_regex(r"[a-z][a-z0-9_.:-]{0,30}", fullmatch=True).filter(
    lambda k: k != ".encoding"
)
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))


@settings(max_examples=300, deadline=None)
@given(key=SAFE_KEY, value=TEXT, name=st.sampled_from(["fusion-mac.vmx", "workstation-win.vmx"]))
def test_property_set_adds_exactly_that_key(key, value, name):
    data = fixture(name)
    f = vmx.parse(data)
    before = {k: f.get(k) for k in f.keys(prefix="")}
    try:
        f.set(key, value)
    except UsageError:  # a character the file's encoding cannot hold: nothing changed
        assert f.render() == data
        return
    back = vmx.parse(f.render())
    assert keyset(back) == {k.lower() for k in before} | {key.lower()}
    assert back.get(key) == value
    for k, v in before.items():
        if k.lower() != key.lower():
            assert back.get(k) == v
    assert reference_parse(f.render())[key.lower()] == vmx.unescape(
        vmx.escape(value.encode(f.encoding))
    )


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=200))
def test_property_escape_round_trips_and_has_no_structure(value):
    escaped = vmx.escape(value)
    assert vmx.unescape(escaped) == value
    assert not set(escaped) & {0x00, 0x0A, 0x0D, 0x22}


# -- shared folders


def test_shared_folders_read():
    folders = vmx.shared_folders(vmx.parse(fixture("fusion-mac.vmx")))
    assert sorted(folders) == [0, 2]
    assert folders[0] == vmx.SharedFolder(
        0, True, True, True, True, "/Users/zoë/Projects", "Projects", "never"
    )
    assert folders[2].host_path == '/Volumes/Archive/2024 "old"'
    assert folders[2].readonly and not folders[2].enabled
    assert folders[2].expiration == "session"


def test_with_shared_folder_takes_first_free_index_and_writes_only_its_keys():
    data = fixture("fusion-mac.vmx")
    f = vmx.parse(data)
    name = vmx.share_name("/mnt/src")
    assert vmx.with_shared_folder(f, name, '/Users/zoë/src "x"\n', readonly=True) == 1
    out = f.render()
    assert out.startswith(data)  # hgfs already enabled, maxNum already 3: only new lines
    added = out[len(data) :].decode().splitlines()
    assert added == [
        'sharedFolder1.present = "TRUE"',
        'sharedFolder1.enabled = "TRUE"',
        'sharedFolder1.readAccess = "TRUE"',
        'sharedFolder1.writeAccess = "FALSE"',
        'sharedFolder1.hostPath = "/Users/zoë/src |22x|22|0A"',
        f'sharedFolder1.guestName = "{name}"',
        'sharedFolder1.expiration = "never"',
    ]
    folder = vmx.shared_folders(vmx.parse(out))[1]
    assert folder.host_path == '/Users/zoë/src "x"\n' and folder.readonly
    # again: the same folder, updated in place
    assert vmx.with_shared_folder(f, name, "/Users/zoë/src", readonly=False) == 1
    assert vmx.shared_folders(f)[1].write_access
    assert f.render().count(b"sharedFolder1.present") == 1


def test_with_shared_folder_enables_hgfs_only_if_disabled_and_bumps_max_num():
    data = fixture("workstation-win.vmx")
    f = vmx.parse(data)
    name = vmx.share_name("/srv/data")
    assert vmx.with_shared_folder(f, name, "C:\\Daten\\Müller", readonly=False) == 0
    assert f.get("isolation.tools.hgfs.disable") == "FALSE"
    assert f.get("sharedFolder.maxNum") == "1"
    old, new = data.split(b"\r\n")[:-1], f.render().split(b"\r\n")
    changed = [a for a, b in zip(old, new, strict=False) if a != b]
    assert changed == [b'isolation.tools.hgfs.disable = "TRUE"']
    assert keyset(vmx.parse(f.render())) - keyset(vmx.parse(data)) == {
        *(f"sharedfolder0.{k}" for k in vmx_folder_keys()),
        "sharedfolder.maxnum",
    }
    assert vmx.shared_folders(f)[0].host_path == "C:\\Daten\\Müller"


def vmx_folder_keys():
    return [
        "present",
        "enabled",
        "readaccess",
        "writeaccess",
        "hostpath",
        "guestname",
        "expiration",
    ]


def test_without_shared_folder_removes_exactly_its_keys():
    data = fixture("fusion-mac.vmx")
    f = vmx.parse(data)
    name = vmx.share_name("/mnt/src")
    vmx.with_shared_folder(f, name, "/Users/zoë/src", readonly=False)
    f.set("sharedFolder1.followSymlinks", "TRUE")  # a key VMware may add for that folder
    assert vmx.without_shared_folder(f, name) == 1
    assert f.render() == data  # maxNum stays 3, other folders stay
    assert vmx.without_shared_folder(f, name) is None
    with pytest.raises(ValueError):
        vmx.without_shared_folder(f, "Projects")  # not a vmshare name: never removed


def test_with_shared_folder_refuses_raw_names():
    f = vmx.parse(fixture("fusion-mac.vmx"))
    for bad in [
        "src",
        "Projects",
        "vmshare-",
        "vmshare-a b",
        "vmshare/../x",
        'vmshare-"',
        "Vmshare-x",
    ]:
        with pytest.raises(ValueError):
            vmx.with_shared_folder(f, bad, "/x", readonly=False)


@pytest.mark.parametrize(
    "path",
    [
        "/mnt/src",
        "/mnt/src/",
        "/",
        "",
        "C:\\Work\\My Src",
        "/mnt/日本",
        '/mnt/"; rm -rf /',
        "x" * 500,
    ],
)
def test_share_name_is_safe_and_deterministic(path):
    name = vmx.share_name(path)
    assert vmx.SHARE_NAME.fullmatch(name) and name.startswith("vmshare-")
    assert name == vmx.share_name(path)
    assert len(name) <= 8 + 25 + 10


def test_share_name_keeps_paths_apart_and_readable():
    assert vmx.share_name("/a/src").startswith("vmshare-src-")
    assert vmx.share_name("/a/src") != vmx.share_name("/b/src")
    assert vmx.share_name("C:\\Work\\My Src").startswith("vmshare-my-src-")


# -- the file on disk


@pytest.fixture
def vm(tmp_path):
    path = tmp_path / "Entwicklung.vmx"
    path.write_bytes(fixture("workstation-win.vmx"))
    return path


def test_edit_vmx_writes_atomically_and_keeps_the_previous_version(vm):
    data = vm.read_bytes()
    name = vmx.share_name("/mnt/src")
    assert vmx.edit_vmx(vm, lambda f: vmx.with_shared_folder(f, name, "C:\\src", readonly=False))
    assert vmx.shared_folders(vmx.parse(vm.read_bytes()))[0].guest_name == name
    assert vm.with_name(vm.name + BACKUP_SUFFIX).read_bytes() == data
    assert not vmx.edit_vmx(vm, lambda f: None)  # nothing changed: nothing written


def test_edit_vmx_refuses_a_locked_vm_and_leaves_the_file(vm):
    (vm.parent / (vm.name + ".lck")).mkdir()
    data = vm.read_bytes()
    called = []
    with pytest.raises(vmx.VmxLocked) as err:
        vmx.edit_vmx(vm, lambda f: called.append(f.set("memsize", "1")))
    assert "in use by VMware" in err.value.message and "\n" not in err.value.message
    assert err.value.hint and "shut" in err.value.hint
    assert vm.read_bytes() == data and not called
    assert sorted(p.name for p in vm.parent.iterdir()) == [vm.name, vm.name + ".lck"]
    assert vmx.edit_vmx(vm, lambda f: f.set("memsize", "1"), lock_check=False)


def test_edit_vmx_leaves_the_file_on_any_error(vm):
    data = vm.read_bytes()

    def change(f):
        f.set("memsize", "1")
        f.set("displayName", "日本")  # windows-1252 cannot hold it

    with pytest.raises(UsageError):
        vmx.edit_vmx(vm, change)
    assert vm.read_bytes() == data
    assert sorted(p.name for p in vm.parent.iterdir()) == [vm.name]


def test_edit_vmx_follows_a_symlink(vm, tmp_path):
    link = tmp_path / "link.vmx"
    link.symlink_to(vm)
    vmx.edit_vmx(link, lambda f: f.set("memsize", "1"))
    assert link.is_symlink() and vmx.parse(vm.read_bytes()).get("memsize") == "1"


def test_edit_vmx_missing_file(tmp_path):
    with pytest.raises(NotFoundError):
        vmx.edit_vmx(tmp_path / "none.vmx", lambda f: None)
