"""Windows guests of Hyper-V: vmshare's Windows guest code over PowerShell Direct, through the
Hyper-V host stand-in. Every host script and every guest script inside it is parsed by
tree-sitter-powershell and checked against the cmdlets' documented parameters; the guest
login's password and the share's password travel only as data, never in a script or argv."""

from __future__ import annotations

import json

import pytest
from tests.testbed.hyperv import HyperVHost, Unsupported, Vm
from tests.testbed.hyperv.runner import StandInPowerShell

from vmshare.backends.hyperv.backend import HypervBackend
from vmshare.backends.hyperv.psdirect import PowerShellDirect, host_script
from vmshare.backends.hyperv.settings import HypervVm
from vmshare.errors import GuestError
from vmshare.guest import guest_for
from vmshare.secrets import SecretStore
from vmshare.spec import GuestAccess

GUEST_PASSWORD = "g'uest \u2019$(pw) `x;\n"
TAG = "vmshare-0123456789abcdef"


@pytest.fixture
def standin(tmp_path):
    host = HyperVHost(tmp_path / "windows")
    host.vms["win"] = Vm("win", os_name="Windows Server 2022 Datacenter")
    return host


@pytest.fixture
def runner(standin):
    return StandInPowerShell(standin)


@pytest.fixture
def guest(standin, runner, tmp_path, monkeypatch):
    monkeypatch.setenv("WIN_GUEST_PW", GUEST_PASSWORD)
    settings = HypervVm(
        name="win",
        guest=GuestAccess(
            os="windows", login_user="Administrator", login_password_env="WIN_GUEST_PW"
        ),
    )
    backend = HypervBackend(settings, runner)
    assert backend.inspect("win").capabilities.guest_os == "windows"
    channel = backend.guest_channel(settings)
    assert isinstance(channel, PowerShellDirect)
    return guest_for("windows", channel, "win", SecretStore(tmp_path / "state"))


def no_secret_sent(runner, standin, *secrets):
    for secret in secrets:
        assert not any(secret in " ".join(argv) for argv in runner.argvs)
        assert not any(secret in text for text in standin.scripts)
        assert not any(secret in script for _, script, _ in standin.guest_scripts)


def test_credentials_mount_and_persistence_run_in_the_guest(guest, standin, runner, tmp_path):
    guest.write_credentials(f"/etc/vmshare/{TAG}.cred", "vmshare", "smb-vmshare")
    share_password = SecretStore(tmp_path / "state").get_or_create("smb-vmshare").reveal()
    vm, _script, given = standin.guest_scripts[-1]
    assert vm == "win" and given == share_password  # the share's password: input only
    assert standin.guest_logins[-1] == ("Administrator", GUEST_PASSWORD)
    source = f"//172.20.0.1/{TAG}"
    options = ["rw", f"credentials=/etc/vmshare/{TAG}.cred", "vers=3.1.1", "seal"]
    guest.mount(source, "X:", "cifs", options)
    assert "New-SmbMapping" in standin.guest_scripts[-1][1]
    guest.fstab_add(TAG, source, "X:", "cifs", options)
    assert "-Persistent:$true" in standin.guest_scripts[-1][1]
    guest.unmount("X:")
    assert "Remove-SmbMapping" in standin.guest_scripts[-1][1]
    no_secret_sent(runner, standin, share_password, GUEST_PASSWORD.strip())


def test_inspect_reads_the_guests_json(guest, standin):
    answer = {"mappings": [{"LocalPath": "X:", "RemotePath": f"\\\\172.20.0.1\\{TAG}"}]}
    standin.guest_answer = lambda vm, script, given: (0, json.dumps(answer) + "\n", "")
    facts = guest.inspect(["X:"])
    assert facts.channel == "powershell-direct"
    assert facts.mounts["X:"].source == f"//172.20.0.1/{TAG}"


def test_a_guest_failure_is_one_line_with_a_hint(guest, standin):
    standin.guest_answer = lambda vm, script, given: (1, "", "Access is denied.\n")
    with pytest.raises(GuestError, match="Access is denied") as info:
        guest.unmount("X:")
    assert info.value.hint


def test_without_a_guest_login_the_channel_says_what_to_set(runner):
    channel = PowerShellDirect(runner, "win", GuestAccess(os="windows"))
    with pytest.raises(GuestError, match="needs a guest login") as info:
        channel.run(["powershell.exe", "-EncodedCommand", "AA=="])
    assert "login_password_env" in (info.value.hint or "")


def test_the_stand_in_refuses_another_block_or_guest_cmdlet(standin):
    text = host_script("win", "Administrator").replace("ReadToEnd()", "ReadLine()")
    data = {"password": "x", "script": "Get-Date", "input": ""}
    with pytest.raises(Unsupported, match="guest runner"):
        standin.handle(text, json.dumps(data) + "\n")
    with pytest.raises(Unsupported, match="allow-list"):
        standin.handle(
            host_script("win", "Administrator"),
            json.dumps({"password": "x", "script": "Format-Volume -DriveLetter 'C'", "input": ""})
            + "\n",
        )
