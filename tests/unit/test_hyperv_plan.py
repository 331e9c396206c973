"""A share for a Hyper-V VM end to end through the core, against the Hyper-V host stand-in
(the guest is the in-memory FakeGuest): the plan shows the exact PowerShell apply runs, with
no secret in it; apply leaves the account, the share and its rights; a second plan is empty;
remove leaves nothing on the "Windows host"."""

from __future__ import annotations

import json

import pytest
from tests.testbed.hyperv import HyperVHost, Vm
from tests.testbed.hyperv.evaluate import parse
from tests.testbed.hyperv.runner import StandInPowerShell

from vmshare import core
from vmshare.backends.fake import FakeGuest
from vmshare.backends.hyperv import backend as hyperv_backend
from vmshare.cli import main
from vmshare.errors import NotFoundError, SpecError
from vmshare.protocols import mount_tag
from vmshare.spec import parse_spec
from vmshare.state import StateStore

SOURCE = "C:\\shares\\it's $(dev) `src"
SPEC = f"""
[vm.dev]
backend = "hyperv"

[[share]]
source = {json.dumps(SOURCE)}
vm = "dev"
target = "/mnt/src"
create = true
"""


@pytest.fixture
def standin(tmp_path, monkeypatch):
    host = HyperVHost(tmp_path / "windows")
    host.vms["dev"] = Vm("dev")
    runner = StandInPowerShell(host)
    monkeypatch.setattr(hyperv_backend, "runner_for", lambda settings: runner)
    guest = FakeGuest()
    monkeypatch.setattr(core.Session, "guest", lambda self, vm: guest)
    host.runner = runner  # type: ignore[attr-defined]
    host.fake_guest = guest  # type: ignore[attr-defined]
    return host


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(tmp_path / "no-host.toml"))
    return StateStore(tmp_path / "state")


def host_scripts(plan):
    return [s.script for s in plan.steps if s.layer == "host" and s.script]


def test_the_plan_shows_the_powershell_that_apply_runs(standin, store):
    spec = parse_spec(SPEC)
    plan = core.plan_shares(spec, "cli", store).plan
    assert [s.action for s in plan.steps if s.layer == "host"] == [
        "mkdir",
        "smb_account",
        "smb_share",
    ]
    assert plan.choices[0].protocol == "smb" and "no device share" in plan.choices[0].reason
    shown = host_scripts(plan)
    for text in shown:
        for part in text.split("\n\n"):
            parse(part.split("\n# ")[0])  # every script parses
    assert "New-SmbShare" in shown[2] and "-EncryptData:$true" in shown[2]
    assert "Everyone" not in shown[2].replace("vmshare never shares with Everyone", "")
    before = len(standin.scripts)
    core.apply_shares(spec, "cli", store)
    ran = standin.scripts[before:]
    for text in shown:  # each shown script is exactly one that ran
        for part in text.split("\n\n"):
            assert part.split("\n# ")[0] in ran
    password = (store.directory / "secrets" / "smb-vmshare").read_text().strip()
    assert not any(password in text for text in standin.scripts)
    assert not any(password in " ".join(argv) for argv in standin.runner.argvs)
    assert password not in json.dumps([s.model_dump() for s in plan.steps])
    assert password not in store.path.read_text()


def test_apply_again_plans_nothing_and_remove_leaves_nothing(standin, store, tmp_path):
    spec = parse_spec(SPEC)
    core.apply_shares(spec, "cli", store)
    tag = mount_tag("dev:/mnt/src")
    assert standin.shares[tag]["access"] == {"vmshare": "Full"}
    assert standin.acls[SOURCE.lower()] == {"vmshare": "Modify"}
    assert standin.users["vmshare"]["password"]
    mounted = standin.fake_guest.mounts["/mnt/src"]
    assert mounted.source == f"//172.20.0.1/{tag}" and "seal" in mounted.options
    assert core.plan_shares(spec, "cli", store).plan.steps == []
    core.remove_share("dev:/mnt/src", store)
    assert standin.shares == {} and standin.users == {}
    assert not (tmp_path / "windows" / "C" / "shares").exists()
    assert standin.fake_guest.mounts == {}


def test_the_cli_dry_run_prints_the_scripts(standin, store, tmp_path, capsys):
    spec_file = tmp_path / "vmshare.toml"
    spec_file.write_text(SPEC)
    with pytest.raises(SystemExit):
        main(["plan", "-f", str(spec_file)])
    out = " ".join(capsys.readouterr().out.split())
    assert "New-SmbShare -Name $name -Path $path -EncryptData:$true" in out
    assert "New-LocalUser -Name $account -Password $secure" in out
    assert "password arrives on standard input" in out
    assert standin.shares == {} and standin.users == {}  # a plan changes nothing


def test_a_missing_folder_without_create_is_refused(standin, store):
    spec = parse_spec(SPEC.replace("create = true", ""))
    with pytest.raises(Exception, match="does not exist"):
        core.plan_shares(spec, "cli", store)


def test_a_vm_the_host_lacks_is_named_before_its_folder(standin, store):
    # the folder is looked for on the VM's host: for a VM that is not there, that says nothing
    text = SPEC.replace('vm = "dev"', 'vm = "ghost"').replace("[vm.dev]", "[vm.ghost]")
    spec = parse_spec(text.replace("create = true", ""))  # and its folder is missing
    with pytest.raises(NotFoundError, match="VM 'ghost' not found"):
        core.plan_shares(spec, "cli", store)


@pytest.mark.parametrize("char", list('"*?<>|:'))
def test_a_folder_name_windows_cannot_hold_is_refused_up_front(char, standin, store):
    with pytest.raises(SpecError, match="which no Windows file name may"):
        parse_spec(SPEC.replace(json.dumps(SOURCE), json.dumps(SOURCE + f"\\s{char}rc")))
    assert standin.scripts == []


def test_a_windows_guest_maps_the_share_through_powershell_direct(tmp_path, store, monkeypatch):
    """The whole path for a Windows guest: plan, apply and remove run the Windows guest code
    over PowerShell Direct; every guest script is parsed and checked by the stand-in."""
    host = HyperVHost(tmp_path / "windows")
    host.vms["win"] = Vm("win", os_name="Windows 11 Enterprise")
    runner = StandInPowerShell(host)
    monkeypatch.setattr(hyperv_backend, "runner_for", lambda settings: runner)
    monkeypatch.setenv("WIN_PW", "guest-secret")
    mapped: dict[str, str] = {}

    def answer(vm, script, given):
        if "Get-SmbMapping" in script and "ConvertTo-Json" in script:  # inspect
            rows = [{"LocalPath": k, "RemotePath": v} for k, v in mapped.items()]
            return 0, json.dumps({"mappings": rows}) + "\n", ""
        if "New-SmbMapping" in script:
            mapped["X:"] = f"\\\\172.20.0.1\\{mount_tag('win:X:')}"
        if "Remove-SmbMapping" in script:
            mapped.clear()
        return 0, "", ""

    host.guest_answer = answer
    spec = parse_spec(
        '[vm.win]\nbackend = "hyperv"\n[vm.win.guest]\nos = "windows"\n'
        'login_user = "Administrator"\nlogin_password_env = "WIN_PW"\n'
        '[[share]]\nsource = "C:\\\\data"\nvm = "win"\ntarget = "X:"\ncreate = true\n'
    )
    core.apply_shares(spec, "cli", store)
    scripts = [s for _, s, _ in host.guest_scripts]
    assert any("New-SmbMapping" in s for s in scripts)
    assert any("-Persistent:$true" in s for s in scripts)
    assert host.shares[mount_tag("win:X:")]["access"] == {"vmshare": "Full"}
    assert not any("guest-secret" in s for s in scripts + host.scripts)
    core.remove_share("win:X:", store)
    assert host.shares == {} and host.users == {} and mapped == {}


def test_a_stopped_vm_is_started_only_with_restart(standin, store):
    standin.vms["dev"].state = "Off"
    spec = parse_spec(SPEC)
    with pytest.raises(Exception, match="not running"):
        core.apply_shares(spec, "cli", store)
    assert standin.shares == {} and standin.power_log == []
    core.apply_shares(spec, "cli", store, allow_restart=True)
    assert standin.power_log == [("start", "dev")]
    assert standin.fake_guest.mounts["/mnt/src"]


def test_status_sees_the_windows_share_and_its_loss(standin, store):
    from vmshare.status import share_health

    core.apply_shares(parse_spec(SPEC), "cli", store)
    (health,) = share_health(store)
    assert health.checks["export"] == "ok", health
    # the folder is the Windows host's, asked of it: not a path on this machine
    assert health.checks["host"] == "ok", health
    standin.shares.clear()  # someone removed the share on the Windows host
    standin.local(SOURCE).rmdir()  # and its folder
    (health,) = share_health(store)
    assert health.checks["export"] == "missing"
    assert health.checks["host"] == "missing"
    assert f"host folder {SOURCE} is missing" in health.problems


def test_a_named_account_is_used_never_made_or_changed(standin, store, monkeypatch):
    monkeypatch.setenv("ALICE_PW", "alice's pw")
    standin.users["alice"] = {"description": "Alice", "password": "alice's pw"}
    spec = parse_spec(
        SPEC.replace(
            'backend = "hyperv"',
            'backend = "hyperv"\nsmb_account = "alice"\nsmb_password_env = "ALICE_PW"',
        )
    )
    plan = core.plan_shares(spec, "cli", store).plan
    account_step = next(s for s in plan.steps if s.action == "smb_account")
    assert account_step.script is None and "alice's pw" not in json.dumps(account_step.args)
    core.apply_shares(spec, "cli", store)
    assert standin.shares[mount_tag("dev:/mnt/src")]["access"] == {"alice": "Full"}
    assert (store.directory / "secrets" / "smb-alice").read_text() == "alice's pw"
    assert not any("New-LocalUser" in s or "Set-LocalUser" in s for s in standin.scripts)
    core.remove_share("dev:/mnt/src", store)
    assert standin.users == {"alice": {"description": "Alice", "password": "alice's pw"}}
    assert not (store.directory / "secrets" / "smb-alice").exists()
    assert standin.shares == {}
