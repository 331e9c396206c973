"""The share contract on VirtualBox, with each adapter: vboxsf folders of the test bed's machine
model, whose VM stands for the session's test guest. In the test bed a folder active in the
running VM is a virtiofs device of the test domain, which the guest's mount.vboxsf stand-in
mounts: so the guest's mount shows virtiofs, with the folder's name as its source."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.share import CrashHarnessInFullRunOnly, ShareContract, ShareTestbed
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
        return share_testbed(
            "vboxmanage", guest, vbox_bed, servers, vmshare, open_tmp, **VBOXMANAGE
        )


class TestVirtualboxSdk(ShareContract):
    @pytest.fixture
    def testbed(self, guest, vbox_bed, servers, vmshare, open_tmp):
        return share_testbed("sdk", guest, vbox_bed, servers, vmshare, open_tmp)
