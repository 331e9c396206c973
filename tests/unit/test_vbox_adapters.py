"""Both VirtualBox adapters pass the same tests: real pyvbox over the COM-level fake, and the
VBoxManage stand-in on PATH, over one machine model that enforces VirtualBox's rules."""

from __future__ import annotations

import shlex
import threading
import time

import pytest
from tests.testbed.fixtures import VboxBed

from vmshare.backends.virtualbox import results
from vmshare.backends.virtualbox.adapter import Adapter, Folder
from vmshare.errors import HypervisorError, NotFoundError, VmshareError

ADAPTERS = ["sdk", "vboxmanage"]


@pytest.fixture(params=ADAPTERS)
def adapter(request, vbox_bed: VboxBed) -> Adapter:
    return vbox_bed.adapter(request.param)


def test_a_vm_is_found_by_name_or_uuid_and_a_missing_one_is_none(adapter, vbox_bed):
    uuid = vbox_bed.model.create("devvm")
    by_name, by_uuid = adapter.machine("devvm"), adapter.machine(uuid)
    assert by_name == by_uuid and by_name is not None
    assert (by_name.name, by_name.uuid, by_name.state, by_name.nat) == (
        "devvm",
        uuid,
        "poweroff",
        True,
    )
    assert adapter.machine("no-such-vm") is None
    assert adapter.names() == ["devvm"]
    assert adapter.version().startswith("7.0.14")


def test_guest_facts_come_from_guest_properties(adapter, vbox_bed):
    vbox_bed.model.create("devvm", running=True, addresses=("10.0.2.15", "192.168.56.4"))
    found = adapter.machine("devvm")
    assert found is not None and found.running and found.state == "running"
    assert found.properties["/VirtualBox/GuestAdd/Version"] == "7.0.14"
    assert found.properties["/VirtualBox/GuestInfo/Net/1/V4/IP"] == "192.168.56.4"


def test_a_permanent_folder_on_a_stopped_vm_is_saved(adapter, vbox_bed):
    vbox_bed.model.create("devvm")
    adapter.add_folder("devvm", Folder("vmshare-a", "/srv/a", writable=False))
    saved = vbox_bed.model.machine("devvm")
    assert saved["folders"] == [
        {
            "name": "vmshare-a",
            "hostPath": "/srv/a",
            "writable": False,
            "autoMount": False,
            "autoMountPoint": "",
        }
    ]
    assert saved["sessions"] == []  # the lock was released
    found = adapter.machine("devvm")
    assert found is not None
    assert found.folders == [Folder("vmshare-a", "/srv/a", writable=False)]
    adapter.remove_folder("devvm", "vmshare-a", transient=False)
    assert vbox_bed.model.machine("devvm")["folders"] == []


def test_a_transient_folder_needs_the_vm_running(adapter, vbox_bed):
    vbox_bed.model.create("devvm")
    with pytest.raises(HypervisorError) as info:
        adapter.add_folder("devvm", Folder("vmshare-t", "/srv/t", transient=True))
    assert info.value.hint  # says what to do
    assert vbox_bed.model.machine("devvm")["transient"] == []
    assert vbox_bed.model.machine("devvm")["sessions"] == []
    vbox_bed.model.start("devvm")
    adapter.add_folder("devvm", Folder("vmshare-t", "/srv/t", transient=True))
    found = adapter.machine("devvm")
    assert found is not None and found.folders == [Folder("vmshare-t", "/srv/t", transient=True)]
    vbox_bed.model.stop("devvm")  # a transient folder ends with the VM
    assert vbox_bed.model.machine("devvm")["transient"] == []


def test_a_running_vm_s_permanent_folder_changes_through_the_api_only(adapter, vbox_bed):
    """The API changes it on the session machine of a shared lock (MachineImpl.cpp checks
    MutableOrRunningStateDep); VBoxManage asks for the write lock, which the running VM's
    process holds (VBoxManageMisc.cpp), so VirtualBox refuses and nothing changes."""
    vbox_bed.model.create("devvm", running=True)
    adapter.add_folder("devvm", Folder("vmshare-p", "/srv/p", transient=True))
    before = vbox_bed.model.machine("devvm")
    if not adapter.permanent_while_running:
        for change in (
            lambda: adapter.add_folder("devvm", Folder("vmshare-p", "/srv/p")),
            lambda: adapter.remove_folder("devvm", "vmshare-p", transient=False),
        ):
            with pytest.raises(HypervisorError) as info:
                change()
            assert "already locked for a session" in info.value.message
            hint = info.value.hint or ""
            assert "only while the VM is off" in hint and 'adapter = "sdk"' in hint
            assert vbox_bed.model.machine("devvm") == before
        return
    adapter.add_folder("devvm", Folder("vmshare-p", "/srv/p"))
    found = adapter.machine("devvm")
    assert found is not None
    assert {(f.name, f.transient) for f in found.folders} == {
        ("vmshare-p", False),
        ("vmshare-p", True),
    }
    adapter.remove_folder("devvm", "vmshare-p", transient=False)
    assert vbox_bed.model.machine("devvm") == before
    assert vbox_bed.model.machine("devvm")["sessions"] == [{"id": "vm-process", "kind": "vm"}]


@pytest.mark.parametrize("transient", [False, True])
def test_a_duplicate_name_is_refused_with_a_hint(adapter, vbox_bed, transient):
    vbox_bed.model.create("devvm", running=transient)  # what each adapter can change
    adapter.add_folder("devvm", Folder("vmshare-d", "/srv/d", transient=transient))
    before = vbox_bed.model.machine("devvm")
    with pytest.raises(HypervisorError) as info:
        adapter.add_folder("devvm", Folder("vmshare-d", "/srv/other", transient=transient))
    assert "already exists" in info.value.message and info.value.hint
    assert vbox_bed.model.machine("devvm") == before


@pytest.mark.parametrize("name", ["two words", "tab\there", "new\nline", ""])
def test_names_virtualbox_refuses_are_refused(adapter, vbox_bed, name):
    vbox_bed.model.create("devvm")
    with pytest.raises(VmshareError):
        adapter.add_folder("devvm", Folder(name, "/srv/x"))
    assert vbox_bed.model.machine("devvm")["folders"] == []


def test_removing_a_folder_that_is_not_there_is_not_found(adapter, vbox_bed):
    vbox_bed.model.create("devvm")
    with pytest.raises(NotFoundError) as info:
        adapter.remove_folder("devvm", "vmshare-none", transient=False)
    assert info.value.hint


def test_a_vm_locked_by_another_session_is_waited_for_then_refused_naming_the_lock(
    adapter, vbox_bed, monkeypatch
):
    """VirtualBox refuses the write lock and the start at once while another client holds the
    VM (the GUI's settings dialog): vmshare asks again for LOCK_WAIT s, then says what holds it."""
    monkeypatch.setattr(results, "LOCK_WAIT", 0.6)
    vbox_bed.model.create("devvm")
    vbox_bed.model.hold("devvm")  # the GUI's settings dialog is open
    for change in (lambda: adapter.add_folder("devvm", Folder("vmshare-l", "/srv/l")),
                   lambda: adapter.start("devvm")):  # fmt: skip
        asked = len(vbox_bed.model.refusals())
        started = time.monotonic()
        with pytest.raises(HypervisorError) as info:
            change()
        assert time.monotonic() - started >= 0.6
        assert len(vbox_bed.model.refusals()) - asked >= 2  # asked again meanwhile
        assert "already locked" in info.value.message
        assert "another program held the VM's session lock for 0.6 s" in info.value.message
        assert "VirtualBox GUI" in (info.value.hint or "")
    machine = vbox_bed.model.machine("devvm")
    assert machine["folders"] == [] and machine["state"] == "poweroff"


def test_a_lock_let_go_within_the_wait_is_taken(adapter, vbox_bed, monkeypatch):
    monkeypatch.setattr(results, "LOCK_WAIT", 20.0)
    vbox_bed.model.create("devvm")
    vbox_bed.model.hold("devvm")
    threading.Timer(0.5, vbox_bed.model.release, ["devvm"]).start()
    adapter.add_folder("devvm", Folder("vmshare-l", "/srv/l"))
    assert [f["name"] for f in vbox_bed.model.machine("devvm")["folders"]] == ["vmshare-l"]
    vbox_bed.model.hold("devvm")
    threading.Timer(0.5, vbox_bed.model.release, ["devvm"]).start()
    adapter.start("devvm")
    assert vbox_bed.model.machine("devvm")["state"] == "running"


def test_the_running_vm_s_own_lock_is_not_waited_for(adapter, vbox_bed, monkeypatch):
    """VBoxManage's write lock on a running VM: its own process holds it for as long as it runs,
    so the refusal comes at once, with the hint to stop it (--restart)."""
    monkeypatch.setattr(results, "LOCK_WAIT", 20.0)
    vbox_bed.model.create("devvm", running=True)
    if adapter.permanent_while_running:
        return  # the API changes a running VM's folder under a shared lock
    started = time.monotonic()
    with pytest.raises(HypervisorError) as info:
        adapter.add_folder("devvm", Folder("vmshare-p", "/srv/p"))
    assert time.monotonic() - started < 10
    assert "--restart" in (info.value.hint or "")


def test_extradata_is_set_read_and_deleted(adapter, vbox_bed):
    vbox_bed.model.create("devvm")
    key = "VBoxInternal2/SharedFoldersEnableSymlinksCreate/vmshare-s"
    assert adapter.extradata("devvm", key) == ""
    adapter.set_extradata("devvm", key, "1")
    assert adapter.extradata("devvm", key) == "1"
    assert vbox_bed.model.machine("devvm")["extradata"] == {key: "1"}
    adapter.set_extradata("devvm", key, "")
    assert vbox_bed.model.machine("devvm")["extradata"] == {}


def test_start_and_stop(adapter, vbox_bed):
    vbox_bed.model.create("devvm")
    adapter.start("devvm")
    assert vbox_bed.model.machine("devvm")["state"] == "running"
    adapter.stop("devvm", force=True)
    assert vbox_bed.model.machine("devvm")["state"] == "poweroff"


def test_a_missing_vm_is_not_found_with_the_hint(adapter, vbox_bed):
    with pytest.raises(NotFoundError) as info:
        adapter.add_folder("ghost", Folder("vmshare-g", "/srv/g"))
    assert "VBoxManage list vms" in (info.value.hint or "")


def test_described_calls_name_the_vm_and_folder_exactly(adapter):
    lines = adapter.describe_add("it's vm", Folder("vmshare-x", "/srv/a b", writable=False))
    text = "\n".join(lines)
    assert "vmshare-x" in text
    if adapter.name == "vboxmanage":
        (line,) = lines  # one command, parsed back by a shell's rules to the exact argv
        assert shlex.split(line) == [
            "VBoxManage",
            "sharedfolder",
            "add",
            "it's vm",
            "--name",
            "vmshare-x",
            "--hostpath",
            "/srv/a b",
            "--readonly",
        ]
    else:
        assert (
            "session.machine.create_shared_folder('vmshare-x', '/srv/a b', writable=False" in text
        )
        assert "session.machine.save_settings()" in text


def test_described_power_calls_stop_gracefully_first(adapter):
    stop = adapter.describe_power("it's vm", "stop")
    start = adapter.describe_power("it's vm", "start")
    assert adapter.describe_power("it's vm", "restart") == stop + start
    deadline = stop.index("# only if it is still running at the deadline:")
    if adapter.name == "vboxmanage":
        assert [shlex.split(line) for line in stop[:deadline] + stop[deadline + 1 :]] == [
            ["VBoxManage", "controlvm", "it's vm", "acpipowerbutton"],
            ["VBoxManage", "controlvm", "it's vm", "poweroff"],
        ]
        assert [shlex.split(line) for line in start] == [
            ["VBoxManage", "startvm", "it's vm", "--type", "headless"]
        ]
    else:
        assert "session.console.power_button()" in stop[:deadline]
        assert "session.console.power_down().wait_for_completion(-1)" in stop[deadline:]
        assert "machine.launch_vm_process(session, 'headless', [])" in start[-1]
