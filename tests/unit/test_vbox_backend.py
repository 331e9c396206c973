"""The VirtualBox backend over both adapters and the test bed's machine model: facts, the
folders each VM state and ``persist`` get, the symlink option, hostile names, a VM that
vanishes mid-apply, and what doctor says about the adapter."""

from __future__ import annotations

import pytest
from tests.testbed.fixtures import VboxBed

from vmshare.backends.virtualbox.adapter import choose_adapter
from vmshare.backends.virtualbox.backend import VirtualboxBackend
from vmshare.backends.virtualbox.settings import VirtualboxVm
from vmshare.errors import BackendUnavailable, HypervisorError, NotFoundError, UsageError
from vmshare.facts import FsDevice
from vmshare.plan.step import Step
from vmshare.protocols import mount_tag

TAG = mount_tag("devvm:/mnt/x")
KEY = f"VBoxInternal2/SharedFoldersEnableSymlinksCreate/{TAG}"


@pytest.fixture(params=["sdk", "vboxmanage"])
def make(request, vbox_bed: VboxBed):
    def backend(**settings) -> VirtualboxBackend:
        made = VirtualboxBackend(VirtualboxVm(name="devvm", adapter=request.param, **settings))
        made._adapter, made.why = vbox_bed.adapter(request.param), "the test bed's"
        return made

    return backend


def attach(backend: VirtualboxBackend, scopes, readonly=False, vm="devvm") -> None:
    backend.attach_share(
        vm=vm, tag=TAG, source="/srv/x", protocol="vboxsf", readonly=readonly, scopes=scopes
    )


def test_facts_of_a_running_vm(make, vbox_bed):
    uuid = vbox_bed.model.create("devvm", running=True, addresses=("10.0.2.15", "10.0.3.15"))
    facts = make().inspect("devvm")
    assert (facts.exists, facts.uuid, facts.running) == (True, uuid, True)
    assert facts.addresses == ["10.0.2.15", "10.0.3.15"]
    assert facts.guest_tools == "Guest Additions 7.0.14"
    caps = facts.capabilities
    assert [d.protocol for d in caps.devices] == ["vboxsf"]
    assert caps.devices[0].readonly_enforced and caps.devices[0].hotplug
    assert caps.nat is not None and (caps.nat.client, caps.nat.host) == ("127.0.0.1", "10.0.2.2")


def test_a_vm_by_uuid_through_the_settings_machine(make, vbox_bed):
    uuid = vbox_bed.model.create("The VM's Name")
    facts = make(machine=uuid).inspect("devvm")
    assert facts.exists and facts.uuid == uuid


def test_a_missing_vm_hints_at_a_close_name(make, vbox_bed):
    vbox_bed.model.create("devvm-2")
    facts = make().inspect("devvm")
    assert not facts.exists
    assert "did you mean 'devvm-2'?" in facts.find_hint


def test_without_guest_additions_the_vm_offers_network_shares_and_says_why(make, vbox_bed):
    vbox_bed.model.create("devvm", running=True, guest_additions=None)
    caps = make().inspect("devvm").capabilities
    assert caps.devices == [] and caps.network == ["nfs", "smb"]
    assert "no Guest Additions" in (caps.no_device_reason or "")


def test_a_windows_guest_gets_smb(make, vbox_bed):
    vbox_bed.model.create("devvm", running=True)
    with vbox_bed.model.change() as data:  # what Guest Additions report in a Windows guest
        data["machines"][0]["properties"]["/VirtualBox/GuestInfo/OS/Product"] = "Windows 10"
    caps = make().inspect("devvm").capabilities
    assert (caps.guest_os, caps.devices, caps.network) == ("windows", [], ["smb"])


def test_a_stopped_vm_gets_the_permanent_folder(make, vbox_bed):
    vbox_bed.model.create("devvm")
    backend = make()
    for _ in range(2):  # idempotent
        attach(backend, ["persistent"], readonly=True)
    facts = backend.inspect("devvm")
    assert facts.persistent_devices == {
        TAG: FsDevice(tag=TAG, source="/srv/x", protocol="vboxsf", readonly=True)
    }
    assert facts.running_devices == {}
    with pytest.raises(HypervisorError) as info:  # a transient folder needs it running
        attach(backend, ["running"])
    assert "needs it running" in info.value.message and info.value.hint


def test_a_running_vm_gets_transient_now_and_permanent_too(make, vbox_bed):
    vbox_bed.model.create("devvm", running=True)
    backend = make()
    # VBoxManage adds the permanent folder only to a stopped VM: the next test
    scopes = ["running", "persistent"] if backend.adapter.permanent_while_running else ["running"]
    attach(backend, scopes)
    attach(backend, scopes)
    machine = vbox_bed.model.machine("devvm")
    assert [f["name"] for f in machine["folders"]] == [TAG] * ("persistent" in scopes)
    assert [f["name"] for f in machine["transient"]] == [TAG]
    backend.detach_share(vm="devvm", tag=TAG, scopes=["running", "persistent"])
    backend.detach_share(vm="devvm", tag=TAG, scopes=["running", "persistent"])
    machine = vbox_bed.model.machine("devvm")
    assert machine["folders"] == [] and machine["transient"] == []


def test_with_vboxmanage_a_running_vm_is_stopped_for_its_permanent_folder(make, vbox_bed):
    """VBoxManage changes a permanent folder only under the write lock, which a running VM's
    process holds: the capability says so (the planner then asks for the permanent folder
    alone) and ``needs_off`` names the steps the plan must stop the VM for."""
    vbox_bed.model.create("devvm", running=True)
    backend = make()
    device = backend.inspect("devvm").capabilities.devices[0]
    api = backend.adapter.permanent_while_running
    assert device.config_needs_off == (
        None
        if api
        else "VBoxManage adds a permanent folder only to a stopped VM (it needs the VM's write "
        "lock)"
    )
    add = plan_step("attach_share", ["persistent"])
    both = plan_step("attach_share", ["running", "persistent"])
    detach = plan_step("detach_share", ["running", "persistent"])
    assert backend.needs_off(both) is None  # the transient folder goes in with a shared lock
    assert backend.needs_off(detach) is None  # no permanent folder to remove
    needed = backend.needs_off(add)
    if api:
        assert needed is None
        return
    assert needed is not None and needed.reason == device.config_needs_off
    assert 'adapter = "sdk"' in needed.instead and "--no-persist" in needed.instead
    before = vbox_bed.model.machine("devvm")
    with pytest.raises(HypervisorError) as info:  # what the plan's stop prevents
        attach(backend, ["persistent"])
    assert "--restart" in (info.value.hint or "")
    assert vbox_bed.model.machine("devvm") == before
    assert backend.stop(vm="devvm") is None  # a clean ACPI shutdown
    assert backend.needs_off(add) is None  # it is off now
    attach(backend, ["persistent"])
    backend.start(vm="devvm")
    machine = vbox_bed.model.machine("devvm")
    assert machine["state"] == "running" and machine["transient"] == []
    assert [f["name"] for f in machine["folders"]] == [TAG]
    needed = backend.needs_off(detach)  # the permanent folder exists now
    assert needed is not None
    assert needed.reason == (
        "VBoxManage removes a permanent folder only from a stopped VM (it needs the VM's write "
        "lock)"
    )
    assert 'adapter = "sdk"' in needed.instead
    backend.stop(vm="devvm")
    backend.detach_share(vm="devvm", tag=TAG, scopes=["running", "persistent"])
    assert vbox_bed.model.machine("devvm")["folders"] == []


def plan_step(action: str, scopes: list[str]) -> Step:
    args = {"tag": TAG, "scopes": scopes}
    if action == "attach_share":
        args.update(source="/srv/x", protocol="vboxsf", readonly=False)
    return Step(
        share="devvm:/mnt/x", layer="hypervisor", action=action, vm="devvm", args=args,
        summary=action,
    )  # fmt: skip


def test_the_symlink_option_sets_its_key_first_and_removal_takes_it_away(make, vbox_bed):
    vbox_bed.model.create("devvm")
    vbox_bed.model.set_extradata("devvm", "GUI/LastCloseAction", "PowerOff")  # the user's
    backend = make(symlinks=True)
    attach(backend, ["persistent"])
    assert vbox_bed.model.machine("devvm")["extradata"][KEY] == "1"
    backend.detach_share(vm="devvm", tag=TAG, scopes=["running", "persistent"])
    assert vbox_bed.model.machine("devvm")["extradata"] == {"GUI/LastCloseAction": "PowerOff"}


def test_symlinks_are_off_by_default_and_the_plan_says_so(make, vbox_bed):
    vbox_bed.model.create("devvm")
    backend = make()
    device = backend.inspect("devvm").capabilities.devices[0]
    assert "symlink creation stays off" in (device.attach_note or "")
    attach(backend, ["persistent"])
    assert KEY not in vbox_bed.model.machine("devvm")["extradata"]


def test_a_running_vm_asked_for_a_change_only_a_start_applies_is_refused(make, vbox_bed):
    """VirtualBox reads the symlink key when the VM starts: a running VM cannot get it now."""
    vbox_bed.model.create("devvm", running=True)
    before = vbox_bed.model.machine("devvm")
    with pytest.raises(HypervisorError) as info:
        attach(make(symlinks=True), ["running", "persistent"])
    assert "takes effect only when the VM starts" in info.value.message
    assert "--restart" in (info.value.hint or "")
    assert vbox_bed.model.machine("devvm") == before  # nothing left behind
    device = make(symlinks=True).inspect("devvm").capabilities.devices[0]
    assert not device.hotplug  # so the planner restarts the VM (or says it must)
    assert (
        device.hotplug_off
        == "symlink creation (symlinks = true) takes effect only when the VM starts"
    )
    backend = make(symlinks=True)
    if not backend.adapter.permanent_while_running:
        backend.stop(vm="devvm")  # the plan stops the VM for VBoxManage's permanent folder
    attach(backend, ["persistent"])  # what a plan with the restart asks for
    machine = vbox_bed.model.machine("devvm")
    assert machine["extradata"] == {KEY: "1"} and [f["name"] for f in machine["folders"]] == [TAG]


@pytest.mark.parametrize(
    "tag", ["vmshare-a b", "--name", "x\ny", "", "vmshare-$(id)", "vmshare-'q'", "a/b"]
)
def test_hostile_folder_names_are_refused_before_anything_changes(make, vbox_bed, tag):
    vbox_bed.model.create("devvm")
    before = vbox_bed.model.machine("devvm")
    backend = make(symlinks=True)
    with pytest.raises(UsageError):
        backend.attach_share(
            vm="devvm", tag=tag, source="/srv/x", protocol="vboxsf", readonly=False,
            scopes=["persistent"],
        )  # fmt: skip
    assert vbox_bed.model.machine("devvm") == before


def test_a_vm_that_vanishes_mid_apply_is_a_clear_error(make, vbox_bed):
    vbox_bed.model.create("devvm", running=True)
    backend = make()
    facts = backend.inspect("devvm")  # planned while it was there
    assert facts.exists
    vbox_bed.model.unregister("devvm")  # deleted in the GUI before apply
    with pytest.raises(NotFoundError) as info:
        attach(backend, ["running", "persistent"])
    assert "'devvm' not found" in info.value.message
    assert "VBoxManage list vms" in (info.value.hint or "")
    assert vbox_bed.model.read()["machines"] == []  # nothing made anywhere


def test_other_protocols_are_refused(make, vbox_bed):
    vbox_bed.model.create("devvm")
    with pytest.raises(HypervisorError):
        make().attach_share(
            vm="devvm", tag=TAG, source="/srv/x", protocol="virtiofs", readonly=False,
            scopes=["persistent"],
        )  # fmt: skip


def test_doctor_says_which_adapter_and_why(make, vbox_bed):
    vbox_bed.model.create("devvm", running=True, guest_additions=None)
    backend = make()
    rows = {row.name: row for row in backend.diagnose("devvm")}
    assert rows["virtualbox adapter"].detail == f"{backend.adapter.name}: the test bed's"
    assert rows["virtualbox version"].detail.startswith("7.0.14")
    assert rows["virtualbox vm devvm"].status == "ok"
    assert rows["guest additions"].status == "warn"
    missing = {row.name: row for row in backend.diagnose("ghost")}
    assert missing["virtualbox vm ghost"].status == "fail"


def test_auto_prefers_the_sdk_only_when_vboxapi_imports(vbox_bed, monkeypatch):
    import vmshare.backends.virtualbox.adapter as adapter

    monkeypatch.setattr(adapter, "vboxapi_importable", lambda: False)
    assert choose_adapter("auto") == (
        "vboxmanage",
        "auto: VirtualBox's vboxapi is not importable, VBoxManage is on PATH",
    )
    with pytest.raises(BackendUnavailable) as info:  # asked for, but it cannot work
        choose_adapter("sdk")
    assert 'adapter = "vboxmanage"' in (info.value.hint or "")
    monkeypatch.setattr(adapter, "vboxapi_importable", lambda: True)
    assert choose_adapter("auto")[0] == "sdk"
    assert choose_adapter("sdk")[0] == "sdk"
    assert choose_adapter("vboxmanage")[0] == "vboxmanage"
    monkeypatch.setattr(adapter, "vboxapi_importable", lambda: False)
    monkeypatch.setattr(adapter.shutil, "which", lambda name: None)
    with pytest.raises(BackendUnavailable) as info:
        choose_adapter("auto")
    assert "install VirtualBox" in (info.value.hint or "")


def test_a_rollback_after_the_vm_vanished_has_nothing_to_detach(make, vbox_bed):
    """Seen by this backend, then deleted: its folders went with it, so the rollback's detach
    is done (with a note); a VM never seen is still not found."""
    vbox_bed.model.create("devvm", running=True)
    backend = make()
    assert backend.inspect("devvm").exists
    vbox_bed.model.unregister("devvm")
    note = backend.detach_share(vm="devvm", tag=TAG, scopes=["running", "persistent"])
    assert note is not None and "deleted from VirtualBox meanwhile" in note
    with pytest.raises(NotFoundError):
        make().detach_share(vm="devvm", tag=TAG, scopes=["running", "persistent"])
