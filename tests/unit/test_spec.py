from pathlib import Path

import pytest

from vmshare.errors import SpecError
from vmshare.spec import Spec, json_schema, load_spec, parse_spec, shorthand

HOSTILE_OK = [
    "it's",
    'say "hi"',
    "$(touch /tmp/pwned)",
    "`id`",
    "a;b",
    "‘curly’ ‛quotes‚",
    "[red]x[/red]",
    "#hash",
    "sp ace",
    "ünïcødé",
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vmshare.toml"
    path.write_text(text)
    return path


def test_spec_file_resolves_relative_home_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PROJ", "proj")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(
        tmp_path,
        """
version = 1
[vm.devvm]
connection = "qemu:///session"

[[share]]
source = "data"
vm = "devvm"
target = "/mnt/data"

[[share]]
source = "~/src/${PROJ}"
vm = "devvm"
target = "/mnt/src/"
readonly = true
mount_options = ["noatime,nodev"]
""",
    )
    spec = load_spec(path)
    assert spec.share[0].source == tmp_path / "data"
    assert spec.share[1].source == tmp_path / "home" / "src" / "proj"
    assert spec.share[1].target == "/mnt/src"
    assert spec.share[1].mount_options == ["noatime", "nodev"]
    assert spec.vm_for("devvm").connection == "qemu:///session"
    assert spec.vm_for("devvm").name == "devvm"
    assert spec.vm_for("other").backend == "libvirt"


def test_shorthand_gives_the_same_model_as_a_file(tmp_path):
    share, vm = shorthand("x", "testvm:/mnt/x", base=tmp_path, readonly=True)
    from_file = parse_spec(
        '[[share]]\nsource = "x"\nvm = "testvm"\ntarget = "/mnt/x"\nreadonly = true\n',
        base=tmp_path,
    )
    assert share == from_file.share[0]
    assert vm.name == "testvm" and share.key == "testvm:/mnt/x"


def test_vm_name_is_before_the_first_colon(tmp_path):
    share, _ = shorthand("/srv", "vm:/mnt/a:b", base=tmp_path)
    assert share.vm == "vm" and share.target == "/mnt/a:b"


@pytest.mark.parametrize(
    ("vm_target", "fragment"),
    [
        ("testvm:mnt/x", "guest path must be absolute"),
        ("testvm:/", "root directory"),
        ("testvm:/mnt/../etc", "'..'"),
        ("testvm", "expected VM:GUEST_PATH"),
        (":/mnt/x", "expected VM:GUEST_PATH"),
        ("testvm:/mnt/a\nb", "control character"),
    ],
)
def test_bad_shorthand_is_a_clear_spec_error(tmp_path, vm_target, fragment):
    with pytest.raises(SpecError) as info:
        shorthand("/srv", vm_target, base=tmp_path)
    assert fragment in info.value.message
    assert "\n" not in info.value.message.replace("a\nb", "")
    assert info.value.hint


@pytest.mark.parametrize("bad", ["a\nb", "tab\there", "nul\x00", "esc\x1b[31m"])
def test_control_characters_in_source_are_refused(tmp_path, bad):
    with pytest.raises(SpecError, match="control character"):
        shorthand(f"/srv/{bad}", "vm:/mnt/x", base=tmp_path)


@pytest.mark.parametrize("name", HOSTILE_OK)
def test_hostile_but_legal_paths_are_kept_exactly(tmp_path, name):
    share, _ = shorthand(f"/srv/{name}", f"vm:/mnt/{name}", base=tmp_path)
    assert str(share.source) == f"/srv/{name}"
    assert share.target == f"/mnt/{name}"


@pytest.mark.parametrize("option", ["a b", "x\ny", "trailing\n", "#c", "uid=$(id)", "a;b", "q'"])
def test_mount_options_that_could_break_fstab_are_refused(tmp_path, option):
    with pytest.raises(SpecError, match="mount option"):
        shorthand("/srv", "vm:/mnt/x", base=tmp_path, mount_options=[option])


def test_error_names_key_and_line(tmp_path):
    path = write(
        tmp_path,
        """version = 1

[[share]]
source = "/srv/a"
vm = "v"
target = "/mnt/a"

[[share]]
source = "/srv/b"
vm = "v"
target = "relative/b"
""",
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"{path}:11: share[1].target" in info.value.message


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, '[[share]]\nsource = "/a"\nvm = "v"\ntarget = "/b"\nreadnoly = true\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert ":5: share[0].readnoly" in info.value.message


def test_unset_env_var_is_an_error_not_an_empty_string(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    path = write(tmp_path, '[[share]]\nsource = "${NOPE_NOT_SET}/x"\nvm = "v"\ntarget = "/b"\n')
    with pytest.raises(SpecError, match=r"\$\{NOPE_NOT_SET\} is not set"):
        load_spec(path)


def test_duplicate_mount_point_is_refused(tmp_path):
    text = '[[share]]\nsource = "/a"\nvm = "v"\ntarget = "/b"\n' * 2
    with pytest.raises(SpecError, match="again"):
        parse_spec(text)


@pytest.mark.parametrize(
    "text", ["not toml = = 1", "version = 2", '[vm."a/b"]\nbackend = "libvirt"', 'vm = "x"']
)
def test_invalid_files_raise_spec_error(text):
    with pytest.raises(SpecError):
        parse_spec(text)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.toml")


def test_owner_parsing(tmp_path):
    share, _ = shorthand("/srv", "vm:/mnt/x", base=tmp_path, owner="1000:100")
    assert share.owner is not None and str(share.owner) == "1000:100"
    with pytest.raises(SpecError, match="UID:GID"):
        shorthand("/srv", "vm:/mnt/x", base=tmp_path, owner="alice")


def test_schema_describes_shares():
    schema = json_schema()
    assert "share" in schema["properties"]
    assert Spec.model_validate({}).share == []
