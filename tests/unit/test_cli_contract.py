"""The command line's contract with people and scripts (issue 7), through the real CLI entry
point. The VM's facts come from factories (no hypervisor); every command that would change a
VM here is one that must refuse before the first step, so nothing below needs a runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from factories import applied_state, applied_vm, facts_for, fresh_vm, spec_of

from vmshare import core, render
from vmshare.cli import BACKENDS, PROTOCOLS, main
from vmshare.plan.resolve import origin_of
from vmshare.spec import BACKEND_ALIASES, BackendName, ProtocolName, load_spec
from vmshare.specfile import portable_source
from vmshare.state import StateStore

VM = "testvm"


def vmshare(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(tmp_path / "no-host.toml"))
    return StateStore(tmp_path / "state")


@pytest.fixture
def vm_facts(monkeypatch):
    """The facts every plan sees: set ``vm_facts.vm`` to the VM's state."""

    class Holder:
        vm = fresh_vm(VM)

    holder = Holder()
    monkeypatch.setattr(core, "gather", lambda spec, probe: facts_for(spec, holder.vm))
    return holder


def write_spec(path: Path, *shares: str) -> Path:
    text = ""
    for line in shares:
        source, vm_target, *options = line.split()
        vm, _, target = vm_target.partition(":")
        text += f'[[share]]\nsource = "{source}"\nvm = "{vm}"\ntarget = "{target}"\n'
        text += "".join(f"{o.split('=')[0]} = {o.split('=')[1]}\n" for o in options)
    path.write_text(text)
    return path


def applied(store: StateStore, spec_file: Path) -> None:
    """Record the spec as applied by ``apply -f spec_file``."""
    spec = load_spec(spec_file)
    state = applied_state(spec)
    for record in state.shares.values():
        record.origin = origin_of(spec_file)
    store.save(state)


# ------------------------------------------------------------- 1. plan before destructive change


def test_apply_that_replaces_a_share_refuses_without_a_terminal(capsys, store, vm_facts, tmp_path):
    spec_file = write_spec(tmp_path / "vmshare.toml", f"/srv/a {VM}:/mnt/a")
    applied(store, spec_file)
    vm_facts.vm = applied_vm(load_spec(spec_file))
    before = store.path.read_text()
    write_spec(spec_file, f"/srv/a {VM}:/mnt/a mount_options=['noatime']")

    code, out, err = vmshare(capsys, "apply", "-f", str(spec_file))
    assert code == 2
    assert "refusing without a terminal" in err and "nothing changed" in err
    assert f"vmshare plan -f {spec_file}" in err and "--yes" in err
    assert "would be replaced" in out  # the plan's note came before the question
    assert store.path.read_text() == before

    code, out, _ = vmshare(capsys, "apply", "-f", str(spec_file), "--json")
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False and doc["data"]["error"]["exit_code"] == 2
    assert store.path.read_text() == before


def test_apply_prune_refuses_without_a_terminal(capsys, store, vm_facts, tmp_path):
    spec_file = write_spec(tmp_path / "vmshare.toml", f"/srv/a {VM}:/mnt/a", f"/srv/b {VM}:/mnt/b")
    applied(store, spec_file)
    vm_facts.vm = applied_vm(load_spec(spec_file))
    before = store.path.read_text()
    write_spec(spec_file, f"/srv/a {VM}:/mnt/a")
    code, _, err = vmshare(capsys, "apply", "-f", str(spec_file), "--prune")
    assert code == 2 and f"({VM}:/mnt/b)" in err
    assert f"vmshare plan -f {spec_file} --prune" in err
    assert store.path.read_text() == before


def test_add_replace_refuses_without_a_terminal(capsys, store, vm_facts, tmp_path):
    spec = spec_of(f"{tmp_path} {VM}:/mnt/a")
    store.save(applied_state(spec))
    vm_facts.vm = applied_vm(spec)
    before = store.path.read_text()
    code, _, err = vmshare(
        capsys, "add", str(tmp_path), f"{VM}:/mnt/a", "-o", "noatime", "--replace"
    )
    assert code == 2 and "refusing without a terminal" in err
    assert store.path.read_text() == before


@pytest.mark.parametrize("command", ["remove", "rm", "umount"])
@pytest.mark.parametrize("refs", [[VM], [f"{VM}:/mnt/a", f"{VM}:/mnt/b"]])
def test_removing_several_shares_refuses_without_a_terminal(capsys, store, command, refs):
    store.save(applied_state(spec_of(f"/srv/a {VM}:/mnt/a", f"/srv/b {VM}:/mnt/b")))
    before = store.path.read_text()
    code, _, err = vmshare(capsys, command, *refs)
    assert code == 2 and "remove would remove 2 share(s)" in err
    assert "--dry-run" in err  # the hint names the command that shows this plan
    assert store.path.read_text() == before
    code, out, _ = vmshare(capsys, command, *refs, "--dry-run", "--json")
    assert code == 0 and json.loads(out)["data"]["plan"]["removes"] == [
        f"{VM}:/mnt/a",
        f"{VM}:/mnt/b",
    ]


def test_remove_vm_asks_even_for_one_share(capsys, store):
    store.save(applied_state(spec_of(f"/srv/a {VM}:/mnt/a")))
    before = store.path.read_text()
    code, _, err = vmshare(capsys, "remove", VM)
    assert code == 2 and "refusing without a terminal" in err
    assert store.path.read_text() == before


def test_remove_with_one_unknown_share_removes_nothing(capsys, store):
    store.save(applied_state(spec_of(f"/srv/a {VM}:/mnt/a")))
    before = store.path.read_text()
    code, _, err = vmshare(capsys, "remove", f"{VM}:/mnt/a", "nosuch", "--yes")
    assert code == 1 and "'nosuch'" in err and "nothing was removed" in err
    assert store.path.read_text() == before


def test_confirm_callback_shows_choices_first_and_asks_only_for_removals(monkeypatch, capsys):
    from vmshare.cli import _confirmer
    from vmshare.plan.model import Choice, Plan

    plan = Plan(choices=[Choice(share="v:/a", protocol="virtiofs", reason="r", semantics="s")])
    assert _confirmer("add", yes=False, json_out=False, preview="p")(plan)
    assert "share v:/a -> virtiofs" in capsys.readouterr().out
    plan.removes = ["v:/a"]
    assert _confirmer("add", yes=True, json_out=False, preview="p")(plan)
    assert _confirmer("remove", yes=False, json_out=False, preview="p", several_only=True)(plan)


# ------------------------------------------------------------------------------ 2. exit codes


def test_status_exits_1_when_nothing_matches(capsys, store):
    code, out, err = vmshare(capsys, "status")
    assert code == 1 and "no share to check" in err and "No shares" not in out
    code, out, _ = vmshare(capsys, "status", f"{VM}:/mnt/nothing", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and "no share" in doc["data"]["error"]["message"]


def test_status_of_a_vm_that_does_not_exist_exits_1(capsys, store, monkeypatch):
    from vmshare.facts import VmFacts

    gone = VmFacts(
        name="ghost",
        backend="libvirt",
        connection="qemu:///system",
        exists=False,
        find_hint="check the name with `virsh -c qemu:///system list --all`",
    )
    monkeypatch.setattr(core.Session, "probe_vm", lambda self, vm, targets: gone)
    code, _, err = vmshare(capsys, "status", "ghost")
    assert code == 1 and "VM 'ghost' not found" in err and "virsh" in err  # the backend's hint
    gone.find_hint = VmFacts.model_fields["find_hint"].default
    code, _, err = vmshare(capsys, "status", "ghost")
    assert code == 1 and "check the VM's name" in err and "virsh" not in err


def test_plan_blocked_exits_2_with_ok_false(capsys, store, vm_facts, tmp_path):
    vm_facts.vm = fresh_vm(VM, running=False)
    spec_file = write_spec(tmp_path / "vmshare.toml", f"{tmp_path} {VM}:/mnt/a")
    code, out, _ = vmshare(capsys, "plan", "-f", str(spec_file), "--json")
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False and doc["data"]["plan"]["blockers"]
    code, out, _ = vmshare(capsys, "plan", "-f", str(spec_file))
    assert code == 2 and "blocked:" in out
    code, out, _ = vmshare(capsys, "add", str(tmp_path), f"{VM}:/mnt/a", "--dry-run")
    assert code == 2 and "blocked:" in out and "Dry run: nothing changed." in out


def test_blocked_apply_and_add_hints_name_the_command_that_shows_the_plan(
    capsys, store, vm_facts, tmp_path
):
    vm_facts.vm = fresh_vm(VM, running=False)
    spec_file = write_spec(tmp_path / "team.toml", f"{tmp_path} {VM}:/mnt/a")
    code, _, err = vmshare(capsys, "apply", "-f", str(spec_file))
    assert code == 2 and f"`vmshare plan -f {spec_file}`" in err
    code, _, err = vmshare(capsys, "add", str(tmp_path), f"{VM}:/mnt/a")
    assert code == 2 and f"`vmshare add {tmp_path} {VM}:/mnt/a --dry-run`" in err
    assert "FILE" not in err and "SRC" not in err


def test_plan_exit_code_is_5_with_changes_and_0_without(capsys, store, vm_facts, tmp_path):
    spec_file = write_spec(tmp_path / "vmshare.toml", f"{tmp_path} {VM}:/mnt/a")
    code, out, _ = vmshare(capsys, "plan", "-f", str(spec_file), "--exit-code", "--json")
    doc = json.loads(out)
    assert code == 5 and doc["ok"] is True and doc["data"]["changes_pending"] is True
    assert vmshare(capsys, "plan", "-f", str(spec_file))[0] == 0  # without --exit-code
    applied(store, spec_file)
    vm_facts.vm = applied_vm(load_spec(spec_file))
    code, out, _ = vmshare(capsys, "plan", "-f", str(spec_file), "--exit-code")
    assert code == 0 and "Nothing to do" in out


def test_plan_mentions_what_prune_would_remove(capsys, store, vm_facts, tmp_path):
    spec_file = write_spec(tmp_path / "vmshare.toml", f"/srv/a {VM}:/mnt/a", f"/srv/b {VM}:/mnt/b")
    applied(store, spec_file)
    vm_facts.vm = applied_vm(load_spec(spec_file))
    write_spec(spec_file, f"/srv/a {VM}:/mnt/a")
    code, out, _ = vmshare(capsys, "plan", "-f", str(spec_file))
    assert code == 0 and f"{VM}:/mnt/b: no longer in the spec; `apply --prune` would remove" in out
    code, out, _ = vmshare(capsys, "plan", "-f", str(spec_file), "--prune", "--exit-code")
    assert code == 5 and "no longer in the spec" in out


# --------------------------------------------------------------------------- 3. --json everywhere


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["add", "--json"], "Missing argument 'SRC'"),
        (["add", "/tmp", "v:/x", "--nosuch", "--json"], "No such option"),
        (["remove", "--json"], "Missing argument"),
        (["plan", "--json", "--bogus"], "No such option"),
        (["add", "/tmp", "v:/x", "--protocol", "virtofs", "--json"], "did you mean 'virtiofs'"),
    ],
)
def test_usage_errors_give_the_envelope_with_json(capsys, store, args, fragment):
    code, out, _ = vmshare(capsys, *args)
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False and doc["command"] == args[0]
    assert fragment in doc["data"]["error"]["message"] and doc["data"]["error"]["exit_code"] == 2


def test_schema_takes_json(capsys):
    code, out, _ = vmshare(capsys, "schema", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["command"] == "schema" and "share" in doc["data"]["properties"]


# ------------------------------------------------------------------------------ 4. conventions


def test_dash_h_and_no_type_placeholders_in_help(capsys):
    for args in (["-h"], ["add", "-h"], ["remove", "-h"], ["plan", "-h"]):
        code, out, _ = vmshare(capsys, *args)
        assert code == 0 and "Usage:" in out
        assert "<bool>" not in out and "<list[str]>" not in out, args


def test_python_dash_m_and_aliases(tmp_path):
    env = {**os.environ, "VMSHARE_STATE_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "vmshare"]
    assert subprocess.run([*run, "--version"], capture_output=True, text=True, env=env).stdout
    ls = subprocess.run([*run, "ls", "--json"], capture_output=True, text=True, env=env)
    assert ls.returncode == 0 and json.loads(ls.stdout)["command"] == "list"


def test_shell_completion(tmp_path):
    vmshare_bin = Path(sys.executable).parent / "vmshare"
    shown = subprocess.run(
        ["bash", "-c", f"{vmshare_bin} --show-completion"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "_vmshare_completion" in shown.stdout
    env = {**os.environ, "_VMSHARE_COMPLETE": "complete_bash", "VMSHARE_STATE_DIR": str(tmp_path)}
    for words, cword, expected in (
        ("vmshare re", "1", "remove"),
        ("vmshare add --protocol vi", "3", "virtiofs"),
        ("vmshare add --backend li", "3", "libvirt"),
    ):
        done = subprocess.run(
            [str(vmshare_bin)],
            env={**env, "COMP_WORDS": words, "COMP_CWORD": cword},
            capture_output=True,
            text=True,
        )
        assert expected in done.stdout.split(), (words, done.stdout, done.stderr)


def test_choices_match_the_spec_models():
    from typing import get_args

    assert get_args(BackendName) + BACKEND_ALIASES == BACKENDS
    assert get_args(ProtocolName) == PROTOCOLS


@pytest.mark.parametrize(
    ("option", "typo", "fragment"),
    [
        ("--backend", "libvrt", "unknown backend 'libvrt'; did you mean 'libvirt'?"),
        ("--protocol", "virtofs", "unknown protocol 'virtofs'; did you mean 'virtiofs'?"),
        ("--protocol", "zzz", "choose one of: auto, native, virtiofs"),
    ],
)
def test_a_mistyped_choice_fails_at_once(capsys, store, option, typo, fragment):
    code, _, err = vmshare(capsys, "add", "/tmp", "v:/x", option, typo)
    assert code == 2 and fragment in err and "Input should be" not in err


# ---------------------------------------------------------------------- 5. spec files for teams


def test_portable_source(tmp_path):
    home = Path("/home/ann")
    assert portable_source(tmp_path / "data" / "x", tmp_path, home) == "./data/x"
    assert portable_source(tmp_path, tmp_path, home) == "."
    assert portable_source(home / "src", tmp_path, home) == "~/src"
    assert portable_source(Path("/srv/www"), tmp_path, home) == "/srv/www"


def test_a_duplicate_name_in_one_vm_is_refused(capsys, store, vm_facts, tmp_path):
    spec = spec_of(f"/srv/a {VM}:/mnt/a name='web'")
    store.save(applied_state(spec))
    before = store.path.read_text()
    code, _, err = vmshare(capsys, "add", str(tmp_path), f"{VM}:/mnt/b", "--name", "web")
    assert code == 2 and f"share name 'web' is already used in VM '{VM}' by {VM}:/mnt/a" in err
    assert store.path.read_text() == before
    # another VM may use the same name
    vm_facts.vm = fresh_vm("othervm")
    code, out, _ = vmshare(
        capsys, "add", str(tmp_path), "othervm:/mnt/b", "--name", "web", "--dry-run"
    )
    assert code == 0, out


# ----------------------------------------------------------------------- 6. the user's words


def test_spec_errors_in_the_users_words(capsys, tmp_path):
    spec_file = tmp_path / "vmshare.toml"
    spec_file.write_text('[vm.v]\nbackend = "libvrt"\n')
    code, _, err = vmshare(capsys, "plan", "-f", str(spec_file))
    assert code == 2 and "unknown backend 'libvrt'; did you mean 'libvirt'?" in err
    assert f"`vmshare plan -f {spec_file}`" in err and "Input should be" not in err
    spec_file.write_text('[[share]]\nsource = "/tmp"\nvm = "v"\ntarget = "/x"\nreadonyl = true\n')
    code, _, err = vmshare(capsys, "plan", "-f", str(spec_file))
    assert code == 2 and "unknown key 'readonyl'; did you mean 'readonly'?" in err


# -------------------------------------------------------------------------------- 7. output


def test_plan_fits_80_columns_and_dry_runs_say_nothing_changed(capsys, store, vm_facts, tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "and-deeper"
    deep.mkdir(parents=True)
    code, out, _ = vmshare(
        capsys, "add", str(deep), f"{VM}:/mnt/a/very/deep/guest/path", "--dry-run"
    )
    assert code == 0
    assert out.rstrip().endswith("Dry run: nothing changed.")
    table = out[out.index("#") : out.index("Dry run")]
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert "why" not in table.splitlines()[0]  # no column of mostly empty reasons


def test_progress_without_a_terminal_prints_each_start(capsys):
    from vmshare.cli import _progress
    from vmshare.plan.step import Step

    step = Step(share="v:/a", layer="guest", action="unmount", vm="v", summary="unmount /a")
    report = _progress(json_out=False)
    report("start", step)
    report("done", step)
    report("undo", step)
    err = capsys.readouterr().err
    assert "… unmount /a\n✓ unmount /a\n↶ unmount /a (rolling back)" in err


# -------------------------------------------------------------------------------- 8. doctor


def test_doctor_lists_every_backend_once_and_hints_in_full(capsys, store):
    from vmshare.backends import REGISTRY

    _, out, _ = vmshare(capsys, "doctor", "-c", "test:///default", "--json")
    data = json.loads(out)["data"]
    checks = {c["name"]: c for c in data}
    assert [c["name"] for c in data if c["name"].startswith("backend ")] == [
        f"backend {name}" for name in REGISTRY
    ]
    assert checks["backend libvirt"]["status"] == "ok"
    assert checks["backend vsphere"]["status"] == "ok"
    assert checks["backend hyperv"]["status"] == "ok"
    assert "`vmshare doctor VM`" in checks["backend hyperv"]["detail"]
    vmware = checks["backend vmware-desktop"]  # built; it needs vmrun
    if shutil.which("vmrun") is None:
        assert (vmware["status"], vmware["detail"]) == ("fail", "vmrun missing")
    else:
        assert vmware["status"] == "ok"
    vboxmanage = shutil.which("VBoxManage") is not None  # built: it needs VBoxManage
    assert checks["backend virtualbox"]["status"] == ("ok" if vboxmanage else "fail")
    assert "how" not in checks and "exporter" in checks["nfs exporter"]["detail"]
    hinted = [c for c in checks.values() if c["hint"]]
    _code, out, _ = vmshare(capsys, "doctor", "-c", "test:///default")
    flat = " ".join(out.split())
    for check in hinted:
        assert " ".join(check["hint"].split()) in flat


def test_doctor_rows_render_hints_below_the_table():
    from rich.console import Console

    from vmshare.doctor import Check

    long_hint = "apt install something-with-a-very-long-name " * 4
    console = Console(width=80, record=True)
    for item in render.checks_view([Check(name="x", status="warn", detail="d", hint=long_hint)]):
        console.print(item)
    text = " ".join(console.export_text().split())
    assert " ".join(long_hint.split()) in text and "What to do:" in text
