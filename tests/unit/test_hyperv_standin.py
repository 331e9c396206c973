"""The Hyper-V backend and its Windows host layer against the host stand-in (no Samba here):
discovery, addresses, and the end state of accounts, shares and ACLs the scripts leave."""

from __future__ import annotations

import pytest
from tests.testbed.hyperv import HyperVHost, Unsupported, Vm
from tests.testbed.hyperv.runner import StandInPowerShell

from vmshare.backends.hyperv.backend import HypervBackend
from vmshare.backends.hyperv.settings import HypervVm
from vmshare.errors import HostCommandError
from vmshare.secrets import SecretStore

TAG = "vmshare-0123456789abcdef"


@pytest.fixture
def standin(tmp_path):
    host = HyperVHost(tmp_path / "windows")
    host.vms["dev"] = Vm("dev")
    return host


@pytest.fixture
def runner(standin):
    return StandInPowerShell(standin)


@pytest.fixture
def backend(runner):
    return HypervBackend(HypervVm(name="dev"), runner)


def test_inspect_reports_state_addresses_os_and_smb_only(backend):
    facts = backend.inspect("dev")
    assert facts.exists and facts.running
    assert facts.addresses == ["192.168.1.20"]
    assert facts.host_address == "172.20.0.1"
    assert facts.capabilities.network == ["smb"] and facts.capabilities.devices == []
    assert facts.capabilities.host_os == "windows"
    assert facts.capabilities.guest_os == "linux"
    assert "KVP on" in (facts.guest_tools or "")


def test_a_windows_guest_is_recognised_from_kvp(backend, standin):
    standin.vms["dev"].os_name = "Windows Server 2022 Datacenter"
    assert backend.inspect("dev").capabilities.guest_os == "windows"


def test_without_kvp_addresses_come_from_the_neighbour_table(backend, standin):
    standin.vms["dev"].kvp = False
    standin.neighbors["00-15-5D-01-02-03"] = "192.168.1.77"
    facts = backend.inspect("dev")
    assert facts.addresses == ["192.168.1.77"]
    assert "Get-NetNeighbor" in (facts.address_reason or "")


def test_a_missing_vm_gets_close_matches(backend):
    facts = backend.inspect("dve")
    assert not facts.exists
    assert "dev" in facts.find_hint


def test_host_address_setting_wins(runner):
    backend = HypervBackend(HypervVm(name="dev", host_address="10.9.9.9"), runner)
    assert backend.inspect("dev").host_address == "10.9.9.9"


def test_diagnose_rows(backend, standin):
    rows = backend.diagnose("dev")
    assert [r.status for r in rows] == ["ok", "ok", "ok"]
    standin.vms["dev"].kvp = False
    assert backend.diagnose("dev")[-1].status == "warn"
    assert backend.diagnose("nope")[-1].status == "fail"


def test_share_lifecycle_leaves_the_model_clean(backend, standin, runner, tmp_path):
    store = SecretStore(tmp_path / "state")
    host = backend.host(store)
    folder = "C:\\data\\it's $(x) `t"
    fact = host.probe_path(folder)
    assert not fact.exists and fact.missing_parents == ["C:\\data"]
    host.mkdir(folder)
    host.mkdir("C:\\data")  # idempotent
    assert host.probe_path(folder).is_dir
    settings = {"account": "vmshare"}
    host.smb_account(settings)
    host.smb_account(settings)  # again: the same account, its password set again
    password = store.get_or_create("smb-vmshare").reveal()
    assert standin.users["vmshare"]["password"] == password
    assert not any(password in " ".join(argv) for argv in runner.argvs)
    assert not any(password in text for text in standin.scripts)
    share = {"entry_id": TAG, "path": folder, "readonly": True}
    host.smb_share(settings, share)
    host.smb_share(settings, share)
    assert standin.shares[TAG]["access"] == {"vmshare": "Read"}
    assert standin.shares[TAG]["encrypt"] is True
    assert standin.acls[folder.lower()] == {"vmshare": "ReadAndExecute"}
    assert host.export_entries("smb_share", {}) == {TAG: folder}
    host.smb_unshare(settings, TAG)
    host.smb_unshare(settings, TAG)  # gone already: fine
    assert standin.shares == {} and standin.acls[folder.lower()] == {}
    assert host.smb_account_remove(settings) is None
    assert standin.users == {}
    assert host.rmdir_empty(folder, ["C:\\data"]) is None
    assert not (tmp_path / "windows" / "C" / "data").exists()


def test_unshare_takes_the_rights_back_where_the_share_was_never_made(backend, standin, tmp_path):
    """The share step gave the rights, then New-SmbShare failed: its undo finds no share and
    takes the rights back from the folder the plan names (a rollback that says "everything is
    as before" must mean it)."""
    host = backend.host(SecretStore(tmp_path / "state"))
    folder = "C:\\data"
    host.mkdir(folder)
    settings = {"account": "vmshare"}
    standin.fail_next("New-SmbShare", "The Server service is not started.", "x", "y")
    with pytest.raises(HostCommandError, match="New-SmbShare : The Server service"):
        host.smb_share(settings, {"entry_id": TAG, "path": folder, "readonly": False})
    assert standin.shares == {} and standin.acls[folder.lower()] == {"vmshare": "Modify"}
    host.smb_unshare(settings, TAG)  # without the folder (an older journal): nothing to find
    assert standin.acls[folder.lower()] == {"vmshare": "Modify"}
    host.smb_unshare(settings, TAG, folder)
    assert standin.acls[folder.lower()] == {}
    host.smb_unshare(settings, TAG, "C:\\gone")  # a folder that is not there: nothing to do


def test_a_user_account_vmshare_did_not_make_is_kept(backend, standin, tmp_path):
    standin.users["vmshare"] = {"description": "someone's", "password": "x"}
    host = backend.host(SecretStore(tmp_path / "state"))
    with pytest.raises(HostCommandError, match="vmshare did not make it"):
        host.smb_account({"account": "vmshare"})
    assert standin.users["vmshare"]["password"] == "x"


def test_a_non_empty_folder_is_kept(backend, tmp_path):
    host = backend.host(SecretStore(tmp_path / "state"))
    host.mkdir("C:\\keep")
    (tmp_path / "windows" / "C" / "keep" / "file").write_text("mine")
    assert "not empty" in (host.rmdir_empty("C:\\keep") or "")


def test_the_stand_in_refuses_what_windows_would_not_take(standin):
    with pytest.raises(Unsupported, match="parse"):
        standin.handle("if ($x) {")
    with pytest.raises(Unsupported, match="allow-list"):
        standin.handle("Format-Volume -DriveLetter 'C'")
    with pytest.raises(Unsupported, match="no parameter"):
        standin.handle("New-SmbShare -Name 'x' -Path 'C:\\x' -GrantEveryone:$true")
    with pytest.raises(Unsupported, match="single-quoted"):
        standin.handle('$x = "C:\\$(whoami)"')


def test_a_folder_at_the_drive_root_and_a_switch_without_host_adapter(backend, standin, tmp_path):
    host = backend.host(SecretStore(tmp_path / "state"))
    fact = host.probe_path("C:\\top")  # no parents: no empty -LiteralPath array
    assert not fact.exists and fact.missing_parents == []
    standin.vms["dev"].switch = "Private"
    assert backend.inspect("dev").host_address is None


def test_the_stand_in_refuses_an_empty_literal_path_as_windows_does(standin):
    code, _, err = standin.handle(
        "$ErrorActionPreference = 'Stop'\ntry {\n$p = @()\n"
        "Get-Item -LiteralPath $p -ErrorAction 'SilentlyContinue'\n"
        "} catch {\n[Console]::Error.WriteLine($_.Exception.Message)\nexit 1\n}"
    )
    assert code == 1 and "empty array" in err


def test_start_and_restart_shut_down_through_the_guest_and_wait_for_kvp(backend, standin):
    standin.vms["dev"].state = "Off"
    assert backend.start(vm="dev") is None
    backend.start(vm="dev")  # running already: nothing to do
    backend.restart(vm="dev")
    assert standin.power_log == [("start", "dev"), ("shutdown", "dev"), ("start", "dev")]
    assert standin.vms["dev"].state == "Running"
