"""The share contract on VirtualBox, with each adapter: vboxsf folders of the test bed's machine
model, whose VM stands for the session's test guest. In the test bed a folder active in the
running VM is a virtiofs device of the test domain, which the guest's mount.vboxsf stand-in
mounts: so the guest's mount shows virtiofs, with the folder's name as its source."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.contract.share import CrashHarnessInFullRunOnly, ShareContract, ShareTestbed
from tests.testbed.faults import Fault, guest_frozen
from tests.testbed.fixtures import FileServers, Guest, VboxBed, Vmshare, vbox_vm
from tests.testbed.vbox.model import live_folders

pytestmark = pytest.mark.integration


def share_testbed(
    adapter: str,
    guest: Guest,
    vbox_bed: VboxBed,
    servers: FileServers,
    vmshare: Vmshare,
    tmp,
    **extra: Any,
) -> ShareTestbed:
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, adapter)

    def devices(live: bool) -> dict[str, str]:
        machine = vbox_bed.model.machine(vm.vm)
        folders = live_folders(machine).values() if live else machine["folders"]
        return {f["name"]: f["hostPath"] for f in folders}

    def vm_config() -> object:
        machine = vbox_bed.model.machine(vm.vm)
        return {k: machine[k] for k in ("folders", "transient", "extradata", "state")}

    return ShareTestbed(
        vm=vm.vm,
        guest=guest,
        cli=vmshare,
        protocol="vboxsf",
        backend=None,  # the VM's settings come from host.toml
        tmp=tmp,
        devices=devices,
        exports=lambda: {},
        vm_config=vm_config,
        mount_types={"virtiofs"},  # the test bed's vboxsf (see the module's docstring)
        mount_source=lambda tag: tag,
        rollback_marker="↶ detach",
        # the mount point (its undo is a no-op) and the folders
        **{"rollback_undone": 2, **extra},
    )


def lock_held(bed: VboxBed, vm: str, step: str) -> Fault:
    """Another client (the GUI's settings dialog, a second VBoxManage) locks the VM when
    vmshare's ``step`` wants the lock: VirtualBox refuses vmshare at once, vmshare asks again for
    a few seconds, gives up and rolls back. The other client lets go once the rollback asks to
    start the VM again (the user closing the dialog), which the rollback's own wait sees."""
    stop = threading.Event()

    def let_go_at_the_rollbacks_start(seen: int) -> None:
        while not stop.wait(0.1):
            if any(r["call"] == "launchVMProcess" for r in bed.model.refusals()[seen:]):
                bed.model.release(vm)
                return

    def inject() -> None:
        bed.model.hold(vm)
        seen = len(bed.model.refusals())
        threading.Thread(target=let_go_at_the_rollbacks_start, args=(seen,), daemon=True).start()

    def restore() -> None:
        stop.set()
        bed.model.release(vm)

    return Fault(
        "session lock held by someone else",
        step,
        inject=inject,
        restore=restore,
        error=r"already locked for a session.*held the VM's session lock for \d+ s",
        bound=60,
    )


def silent(bed: VboxBed, step: str, prefix: str) -> Fault:
    """VirtualBox never answers the VBoxManage calls that start with ``prefix`` from vmshare's
    ``step`` on (VBoxSVC stuck in that change): vmshare's deadline ends each one."""
    return Fault(
        "VBoxManage never answers",
        step,
        inject=lambda: bed.freeze(prefix),
        restore=bed.thaw,
        error=r"`VBoxManage sharedfolder add .*` did not finish within its 30 s deadline",
        bound=90,
    )


# VBoxManage changes a permanent folder only while the VM is off (the write lock): each change
# of one stops the running VM and starts it again, which --restart allows; a rollback undoes
# that stop and start too (the mount point, the start, the folders, the stop)
VBOXMANAGE = {
    "add_args": ["--restart"],
    "remove_args": ["--restart"],
    "apply_args": ["--restart"],
    "rollback_undone": 4,
}


class TestVirtualboxVBoxManage(CrashHarnessInFullRunOnly, ShareContract):
    @pytest.fixture
    def testbed(self, guest, vbox_bed, servers, vmshare, open_tmp):
        step = "hypervisor.attach"  # the VM is off (the plan stopped it): a write lock
        faults = [lock_held(vbox_bed, "vboxvm", step), silent(vbox_bed, step, "sharedfolder add")]
        return share_testbed(
            "vboxmanage", guest, vbox_bed, servers, vmshare, open_tmp, **VBOXMANAGE, faults=faults
        )


class TestVirtualboxSdk(ShareContract):
    @pytest.fixture
    def testbed(self, guest, vbox_bed, servers, vmshare, open_tmp):
        # the VM runs, so the SDK asks only for shared locks, which no other client's lock
        # blocks (a lock held by someone else meets the VBoxManage class's write lock)
        faults = [
            guest_frozen(
                guest.dom, "hypervisor.attach", "did not start a session within 5 s .*frozen"
            )
        ]
        return share_testbed("sdk", guest, vbox_bed, servers, vmshare, open_tmp, faults=faults)
