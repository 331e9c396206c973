import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmshare.cli import main

SDKS = ("libvirt", "libvirt_qemu", "pyVmomi", "virtualbox", "winrm")


def vmshare(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["add", "--help"], ["schema"]])
def test_light_commands_import_no_sdk(argv, tmp_path):
    code = (
        "import sys\n"
        "from vmshare.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"loaded = [m for m in {SDKS!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    env = {"VMSHARE_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)


# What `vmshare list` builds nothing with when there is nothing to list: no models, no tables.
HEAVY = ("pydantic", "vmshare.state", "vmshare.spec", "rich.table", "libvirt", "vmshare.core")


@pytest.mark.parametrize("state", [None, '{"version": 3, "shares": {}}'])
@pytest.mark.parametrize("command", ["list", "ls"])
def test_list_of_an_empty_state_imports_no_models(command, state, tmp_path):
    if state is not None:
        (tmp_path / "state.json").write_text(state)
    code = (
        "import sys\n"
        "from vmshare.cli import main\n"
        "try:\n"
        f"    main([{command!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    env = {
        "VMSHARE_STATE_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("No shares")


MODELS = ("pydantic", "vmshare.state", "vmshare.spec", "libvirt", "vmshare.core")
V2_STATE = Path(__file__).parent / "data" / "state-v2-main-8e8ac77.json"


def _state_with_shares(directory: Path) -> list[str]:
    """A current state file with three shares (migrated by the real store); the table the
    validated load prints for it, as lines."""
    from rich.console import Console

    from vmshare import render
    from vmshare.state import StateStore

    (directory / "state.json").write_bytes(V2_STATE.read_bytes())
    store = StateStore(directory)
    state = store.load()
    with store.locked():
        store.save(state)
    text = io.StringIO()
    Console(file=text, width=200).print(render.records_table(state.listed()))
    return text.getvalue().splitlines()


def _list_in_a_new_process(directory: Path, *args: str) -> tuple[list[str], list[str]]:
    """``vmshare list ARGS``'s output lines, and the model modules it imported."""
    code = (
        "import sys\n"
        "from vmshare.cli import main\n"
        "try:\n"
        f"    main(['list', *{args!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print('LOADED', [m for m in {MODELS!r} if m in sys.modules])\n"
    )
    env = {
        "VMSHARE_STATE_DIR": str(directory),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "COLUMNS": "200",
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    *lines, loaded = proc.stdout.splitlines()
    return lines, eval(loaded.removeprefix("LOADED "))


def test_list_of_shares_prints_the_validated_table_without_models(tmp_path):
    expected = _state_with_shares(tmp_path)
    lines, loaded = _list_in_a_new_process(tmp_path)
    assert [line.rstrip() for line in lines] == [line.rstrip() for line in expected]
    assert len(lines) == 4 and loaded == []


def test_list_of_a_record_it_cannot_read_plainly_takes_the_validated_load(
    capsys, tmp_path, monkeypatch
):
    _state_with_shares(tmp_path)
    document = json.loads((tmp_path / "state.json").read_text())
    del next(iter(document["shares"].values()))["readonly"]
    (tmp_path / "state.json").write_text(json.dumps(document))
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    code, _, err = vmshare(capsys, "list")
    assert code != 0 and "damaged" in err  # the models' verdict, not a partial table


def test_list_of_a_damaged_or_newer_state_still_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    (tmp_path / "state.json").write_text("{not json")
    code, _, err = vmshare(capsys, "list")
    assert code != 0 and "damaged" in err
    (tmp_path / "state.json").write_text('{"version": 99, "shares": {}}')
    code, _, err = vmshare(capsys, "list")
    assert code != 0 and "upgrade vmshare" in err


def test_help_lists_commands_and_exit_codes(capsys):
    code, out, _ = vmshare(capsys, "--help")
    assert code == 0
    for command in ("add", "remove", "apply", "plan", "list", "status", "doctor", "schema"):
        assert command in out
    assert "rolled back" in out


def test_version(capsys):
    code, out, _ = vmshare(capsys, "--version")
    assert code == 0 and out.startswith("vmshare ")


def test_list_empty_and_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    assert vmshare(capsys, "list")[1].startswith("No shares")
    code, out, _ = vmshare(capsys, "list", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["command"] == "list" and doc["data"] == []


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (["add", "/tmp", "vm:relative"], 2, "must be absolute"),
        (["add", "/tmp", "novmtarget"], 2, "expected VM:GUEST_PATH"),
        (["add", "/tmp/a\nb", "vm:/mnt/x"], 2, "control character"),
        (["add", "/tmp", "vm:/mnt/x", "--owner", "bob"], 2, "UID:GID"),
        (["add", "/tmp", "vm:/mnt/x", "--backend", "nope"], 2, "backend"),
        (["add", "/tmp", "vm:/mnt/x", "--backend", "virtualbox"], 1, "VirtualBox is not reachable"),
        (["add", "/tmp", "vm:/mnt/x", "--backend", "vmware"], 2, "[vm.vm] table"),
        (["add", "/tmp", "vm:/mnt/x", "--backend", "hyperv", "-c", "x"], 2, "libvirt setting"),
        (["add", "/tmp", "vm:/mnt/x", "-o", "a b"], 2, "mount option"),
        (["plan", "-f", "/nonexistent/vmshare.toml"], 2, "not found"),
        (["remove", "vm:/mnt/nothing"], 1, "no share"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_bad_input_is_one_clear_error_with_a_hint(
    capsys, tmp_path, monkeypatch, args, exit_code, fragment
):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    code, out, err = vmshare(capsys, *args)
    assert code == exit_code
    assert fragment in err
    assert "Traceback" not in err + out
    if exit_code != 2 or "No such" not in fragment:
        assert "hint:" in err or "Try" in err
    assert not list(tmp_path.glob("state.json"))  # nothing recorded


def test_errors_as_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    code, out, _ = vmshare(capsys, "remove", "vm:/mnt/x", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert doc["data"]["error"]["exit_code"] == 1 and doc["data"]["error"]["hint"]


def test_spec_error_points_at_the_line(capsys, tmp_path):
    spec = tmp_path / "vmshare.toml"
    spec.write_text('[[share]]\nsource = "/tmp"\nvm = "v"\ntarget = "nope"\n')
    code, _, err = vmshare(capsys, "plan", "-f", str(spec))
    assert code == 2 and f"{spec}:4: share[0].target" in err


def test_schema_is_json_schema(capsys):
    code, out, _ = vmshare(capsys, "schema")
    assert code == 0 and "share" in json.loads(out)["properties"]


def test_removing_an_unknown_share_says_so_even_when_the_hypervisor_is_down(
    capsys, tmp_path, monkeypatch
):
    # the VM's libvirt socket does not exist: the hypervisor cannot be asked for leftovers
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    host = tmp_path / "host.toml"
    host.write_text(f'[vm.vm]\nconnection = "qemu:///system?socket={tmp_path}/no-sock"\n')
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(host))
    code, _, err = vmshare(capsys, "remove", "vm:/mnt/nothing")
    assert code == 1, err
    assert "vmshare has no share 'vm:/mnt/nothing'" in err
    assert "leftovers of it on the VM could not be looked for" in err
    assert "cannot connect to libvirt" in err
