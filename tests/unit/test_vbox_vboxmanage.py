"""The VBoxManage side on its own: the stand-in refuses what VBoxManage does not document, and
vmshare reads VBoxManage's output formats (6.1 and 7.x) and its errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.testbed.fixtures import VboxBed

from vmshare.backends.virtualbox.results import from_vboxmanage
from vmshare.backends.virtualbox.vboxmanage import (
    parse_folders,
    parse_machinereadable,
    parse_properties,
)
from vmshare.errors import HypervisorError, NotFoundError


def vboxmanage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["VBoxManage", *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "args",
    [
        ["sharedfolder", "add", "devvm", "--name", "n", "--hostpath", "/p", "--bogus"],
        ["sharedfolder", "add", "devvm", "--name", "n"],  # no --hostpath
        ["sharedfolder", "add", "--name", "n", "--hostpath", "/p", "devvm"],  # VM not first
        ["sharedfolder", "remove", "devvm", "--name", "n", "--readonly"],
        ["setextradata", "devvm"],
        ["startvm", "devvm", "--type", "fullscreen"],
        ["controlvm", "devvm", "savestate"],
        ["guestcontrol", "devvm", "run", "--exe", "/bin/true", "--password", "secret"],
        ["guestcontrol", "devvm", "run", "--nosuchoption", "--", "true"],
        ["guestproperty", "get", "devvm", "/x"],
        ["nosuchcommand"],
    ],
)
def test_the_stand_in_refuses_undocumented_syntax(vbox_bed: VboxBed, args):
    vbox_bed.model.create("devvm")
    before = vbox_bed.model.read()
    proc = vboxmanage(*args)
    assert proc.returncode == 2, proc
    assert proc.stderr.startswith("VBoxManage: error:")
    assert vbox_bed.model.read() == before


def test_the_stand_in_takes_both_option_forms(vbox_bed: VboxBed):
    vbox_bed.model.create("devvm")
    proc = vboxmanage("sharedfolder", "add", "devvm", "--name=n1", "--hostpath=/p", "--readonly")
    assert proc.returncode == 0, proc.stderr
    proc = vboxmanage("sharedfolder", "add", "devvm", "--name", "n2", "--hostpath", "/q")
    assert proc.returncode == 0, proc.stderr
    folders = parse_folders(vboxmanage("showvminfo", "devvm").stdout)
    assert [(f.name, f.host_path, f.writable) for f in folders] == [
        ("n1", "/p", False),
        ("n2", "/q", True),
    ]


def test_errors_print_as_vboxmanage_prints_them(vbox_bed: VboxBed):
    proc = vboxmanage("showvminfo", "ghost", "--machinereadable")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "VBoxManage: error: Could not find a registered machine named 'ghost'",
        "VBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component "
        "SessionMachine, interface IMachine, callee nsISupports",
    ]


@pytest.mark.parametrize("verb", ["add", "remove"])
def test_the_stand_in_changes_no_permanent_folder_of_a_running_vm(vbox_bed: VboxBed, verb):
    """VBoxManage takes the write lock for a permanent folder, always (VirtualBox 7.0.14's
    VBoxManageMisc.cpp, handleSharedFolderAdd/Remove), and a running VM's process holds the
    machine: VirtualBox refuses, and VBoxManage prints the failed call's context."""
    vbox_bed.model.create("devvm")
    made = vboxmanage("sharedfolder", "add", "devvm", "--name", "old", "--hostpath", "/o")
    assert made.returncode == 0, made.stderr
    vbox_bed.model.start("devvm")
    before = vbox_bed.model.read()
    args = ["--name", "new", "--hostpath", "/n"] if verb == "add" else ["--name", "old"]
    proc = vboxmanage("sharedfolder", verb, "devvm", *args)
    assert proc.returncode == 1
    line = {"add": 1673, "remove": 1769}[verb]
    assert proc.stderr.splitlines() == [
        "VBoxManage: error: The machine 'devvm' is already locked for a session (or being "
        "unlocked)",
        "VBoxManage: error: Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component "
        "MachineWrap, interface IMachine, callee nsISupports",
        f'VBoxManage: error: Context: "LockMachine(a->session, LockType_Write)" at line {line} '
        "of file VBoxManageMisc.cpp",
    ]
    assert vbox_bed.model.read() == before  # nothing changed, no lock left behind
    transient = vboxmanage("sharedfolder", "add", "devvm", "--name", "t", "--hostpath", "/t")
    assert transient.returncode == 1  # the same write lock
    transient = vboxmanage(
        "sharedfolder", "add", "devvm", "--name", "t", "--hostpath", "/t", "--transient"
    )
    assert transient.returncode == 0, transient.stderr  # a shared lock and the console
    vbox_bed.model.stop("devvm")
    proc = vboxmanage("sharedfolder", verb, "devvm", *args)  # off: the write lock is free
    assert proc.returncode == 0, proc.stderr
    names = [f["name"] for f in vbox_bed.model.machine("devvm")["folders"]]
    assert names == (["old", "new"] if verb == "add" else [])


def test_the_com_fake_changes_a_running_vm_s_permanent_folder_on_its_session_machine(
    vbox_bed: VboxBed,
):
    """The API's own rule, which the COM fake keeps: createSharedFolder and removeSharedFolder
    check MutableOrRunningStateDep (VirtualBox 7.0's MachineImpl.cpp), so the session machine
    of a shared lock on a running VM changes its permanent folders; the write lock is refused."""
    from tests.testbed.vbox.com import ComSession, ComVirtualBox
    from tests.testbed.vbox.model import Fault

    vbox_bed.model.create("devvm", running=True)
    machine = ComVirtualBox(vbox_bed.model).findMachine("devvm")
    session = ComSession()
    with pytest.raises(Fault) as info:
        machine.lockMachine(session, 2)  # LockType.Write
    assert "already locked for a session" in info.value.msg
    machine.lockMachine(session, 1)  # LockType.Shared
    session.machine.createSharedFolder("vmshare-p", "/srv/p", True, False, "")
    session.machine.saveSettings()
    session.unlockMachine()
    assert [f["name"] for f in vbox_bed.model.machine("devvm")["folders"]] == ["vmshare-p"]
    machine.lockMachine(session, 1)
    session.machine.removeSharedFolder("vmshare-p")
    session.machine.saveSettings()
    session.unlockMachine()
    saved = vbox_bed.model.machine("devvm")
    assert saved["folders"] == [] and saved["sessions"] == [{"id": "vm-process", "kind": "vm"}]


REAL_61_ERROR = """\
VBoxManage: error: The machine 'devvm' is already locked for a session (or being unlocked)
VBoxManage: error: Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports
VBoxManage: error: Context: "LockMachine(a->session, LockType_Write)" at line 1040 of file VBoxManageMisc.cpp
"""  # noqa: E501


def test_a_vboxmanage_error_becomes_one_line_with_a_hint():
    error = from_vboxmanage(REAL_61_ERROR, "add shared folder x to VM 'devvm'")
    assert isinstance(error, HypervisorError) and not isinstance(error, NotFoundError)
    assert error.message == (
        "VirtualBox could not add shared folder x to VM 'devvm': The machine 'devvm' is already "
        "locked for a session (or being unlocked)"
    )
    assert "another program holds the VM's lock" in (error.hint or "")
    assert "changes a permanent folder only while the VM is off" in (error.hint or "")
    assert "--restart" in (error.hint or "") and 'adapter = "sdk"' in (error.hint or "")
    missing = from_vboxmanage(
        "VBoxManage: error: Could not find a registered machine named 'x'\n"
        "VBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component "
        "VirtualBoxWrap, interface IVirtualBox, callee nsISupports\n",
        "find VM 'x'",
    )
    assert isinstance(missing, NotFoundError)


def test_guest_properties_are_read_in_the_61_and_the_7x_format():
    old = (
        "Name: /VirtualBox/GuestAdd/Version, value: 6.1.50, timestamp: 1700000000000000000, "
        "flags: \nName: /VirtualBox/GuestInfo/Net/0/V4/IP, value: 10.0.2.15, timestamp: 1, "
        "flags: TRANSIENT\n"
    )
    new = (
        "/VirtualBox/GuestAdd/Version             = '7.0.14' @ 2023-11-14T22:13:20.000000000Z\n"
        "/VirtualBox/GuestInfo/Net/0/V4/IP        = '10.0.2.15' @ 2023-11-14T22:13:20Z\n"
    )
    assert parse_properties(old) == {
        "/VirtualBox/GuestAdd/Version": "6.1.50",
        "/VirtualBox/GuestInfo/Net/0/V4/IP": "10.0.2.15",
    }
    assert parse_properties(new) == {
        "/VirtualBox/GuestAdd/Version": "7.0.14",
        "/VirtualBox/GuestInfo/Net/0/V4/IP": "10.0.2.15",
    }


def test_machinereadable_values_are_unquoted():
    text = 'name="it\'s a vm"\nUUID="0-1"\nVMState="running"\nnic1="nat"\nmemory=1024\n'
    assert parse_machinereadable(text) == {
        "name": "it's a vm",
        "UUID": "0-1",
        "VMState": "running",
        "nic1": "nat",
        "memory": "1024",
    }


def test_folder_lines_with_hostile_paths_and_7x_mount_points():
    text = (
        "Name: 'vmshare-a', Host path: '/srv/it's, (odd)' (machine mapping), writable\n"
        "Name: 'vmshare-b', Host path: '/srv/b' (transient mapping), readonly, auto-mount, "
        "mount-point: '/mnt/b'\n"
    )
    folders = parse_folders(text)
    assert [(f.name, f.host_path, f.writable, f.transient) for f in folders] == [
        ("vmshare-a", "/srv/it's, (odd)", True, False),
        ("vmshare-b", "/srv/b", False, True),
    ]
    assert folders[1].automount and folders[1].auto_mount_point == "/mnt/b"


def test_the_guest_password_goes_only_into_a_private_file_that_is_deleted(monkeypatch):
    import os
    import stat

    from vmshare import hostexec
    from vmshare.backends.virtualbox import vboxmanage as module
    from vmshare.secrets import Secret

    seen = {}

    def run(argv, **kw):
        path = argv[argv.index("--passwordfile") + 1]
        seen.update(argv=list(argv), mode=stat.S_IMODE(os.stat(path).st_mode), path=path)
        seen["content"] = Path(path).read_text()
        return hostexec.CommandResult(tuple(argv), 0, b"ok", b"")

    monkeypatch.setattr(module.hostexec, "run", run)
    result = module.VBoxManageAdapter().guest_run(
        "devvm", "root", Secret("s3cr3t pass"), ["echo", "hi"], b"input", 30
    )
    assert result.stdout == b"ok"
    assert not any("s3cr3t" in arg for arg in seen["argv"])
    assert seen["content"] == "s3cr3t pass" and seen["mode"] == 0o600
    assert not os.path.exists(seen["path"])
    assert seen["argv"][:4] == ["VBoxManage", "guestcontrol", "devvm", "run"]


def test_the_stand_in_refuses_a_start_and_a_write_lock_while_another_session_holds_the_vm(
    vbox_bed: VboxBed,
):
    """The GUI's settings dialog holds a stopped VM (an exclusive write lock): VirtualBox 7.0
    refuses VBoxManage's write lock and its start with VBOX_E_INVALID_OBJECT_STATE and its own
    words, and logs each refusal; once it lets go, both work."""
    vbox_bed.model.create("devvm")
    vbox_bed.model.hold("devvm")
    started = vboxmanage("startvm", "devvm", "--type", "headless")
    assert started.returncode == 1
    assert started.stderr.splitlines() == [
        "VBoxManage: error: The machine 'devvm' is already locked by a session (or being locked "
        "or unlocked)",
        "VBoxManage: error: Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component "
        "MachineWrap, interface IMachine, callee nsISupports",
        'VBoxManage: error: Context: "LaunchVMProcess(a->session, sessionType.raw(), '
        'ComSafeArrayAsInParam(aBstrEnv), progress.asOutParam())" at line 881 of file '
        "VBoxManageMisc.cpp",
    ]
    added = vboxmanage("sharedfolder", "add", "devvm", "--name", "n", "--hostpath", "/n")
    assert added.returncode == 1
    assert "already locked for a session (or being unlocked)" in added.stderr
    assert [r["call"] for r in vbox_bed.model.refusals()] == ["launchVMProcess", "lockMachine"]
    vbox_bed.model.release("devvm")
    assert (
        vboxmanage("sharedfolder", "add", "devvm", "--name", "n", "--hostpath", "/n").returncode
        == 0
    )
    assert vboxmanage("startvm", "devvm", "--type", "headless").returncode == 0
