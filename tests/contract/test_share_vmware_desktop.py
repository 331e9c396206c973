"""The share contract on Workstation/Fusion (the vmrun stand-in): HGFS into the session's test
guest through vmrun (its guest commands too), and NFS and SMB to the loopback servers into the
ssh test guest, whose "VMware VM" vmshare reaches over ssh.

The guest's vmhgfs-fuse is the test bed's stand-in: it mounts the virtiofs device the vmrun
stand-in plugged for the folder, so /proc/mounts shows virtiofs where a real guest shows
fuse.vmhgfs-fuse; the source, ".host:/NAME", is the real client's."""

from __future__ import annotations

import pytest

from tests.contract.share import (
    CrashHarnessInFullRunOnly,
    ShareContract,
    ShareTestbed,
    network_expectations,
)
from tests.contract.test_share_libvirt import server_stopped
from tests.testbed.faults import Fault, guest_frozen
from tests.testbed.fixtures import (
    OWNER,
    FileServers,
    Vmshare,
    VmwareBed,
    VmwareSshBed,
    exported,
)
from vmshare.backends.vmware_desktop import vmxfacts
from vmshare.formats import fstab

pytestmark = pytest.mark.integration


def folders(bed: VmwareBed, live: bool) -> dict[str, str]:
    """vmshare's HGFS folders: in the running VM (the domain's devices) or in the .vmx."""
    if live:
        return {
            tag.removeprefix(".host:/"): source
            for tag, source in bed.guest.filesystems(live=True).items()
            if tag.startswith(".host:/")
        }
    parsed = vmxfacts.read(bed.vmx)
    assert parsed is not None
    return {name: d.source for name, d in vmxfacts.devices(parsed).items()}


def vmx_config(bed: VmwareBed) -> bytes:
    """The .vmx but sharedFolder.maxNum, which VMware never lowers."""
    lines = bed.vmx.read_bytes().splitlines(keepends=True)
    return b"".join(line for line in lines if not line.startswith(b"sharedFolder.maxNum"))


def vmrun_silent(bed: VmwareBed, command: str, step: str) -> Fault:
    """vmrun's ``command`` never answers from ``step`` on (VMware waits on a dialog): vmshare's
    deadline on each vmrun call ends it."""
    return Fault(
        "vmrun never answers",
        step,
        inject=lambda: bed.freeze(command),
        restore=bed.thaw,
        error=rf"vmrun {command} did not finish within its 30 s deadline",
        bound=90,
    )


class TestVmwareDesktopHgfs(CrashHarnessInFullRunOnly, ShareContract):
    @pytest.fixture
    def testbed(self, vmware: VmwareBed, vmshare: Vmshare, open_tmp):
        vmshare.env.update(vmware.env)
        return ShareTestbed(
            vm=vmware.vm,
            guest=vmware.guest,
            cli=vmshare,
            protocol="hgfs",
            backend=None,  # the VM's settings come from host.toml
            mount_types={"virtiofs"},  # the stand-in's; a real guest: fuse.vmhgfs-fuse
            mount_source=lambda tag: f".host:/{tag}",
            tmp=open_tmp,
            devices=lambda live: folders(vmware, live),
            exports=dict,
            vm_config=lambda: vmx_config(vmware),
            fstab_line=lambda tag, target: (
                f".host:/{tag} {fstab.escape(target)} fuse.vmhgfs-fuse rw,allow_other,"
                f"subtype=vmhgfs-fuse,fsname=.host:/{tag},uid=0,gid=0,nofail 0 0"
            ),
            faults=[vmrun_silent(vmware, "addSharedFolder", "hypervisor.attach")],
        )


def network_testbed(bed: VmwareSshBed, vmshare, servers, open_tmp, protocol, faults):
    vmshare.env.update(bed.env)
    return ShareTestbed(
        vm=bed.vm,
        guest=bed.guest,
        cli=vmshare,
        protocol=protocol,
        backend=None,
        tmp=open_tmp,
        owner=OWNER,
        devices=lambda live: {},  # no HGFS folder may appear
        exports=lambda: exported(servers, protocol),
        vm_config=lambda: bed.guest.filesystems(live=False),
        add_args=["--protocol", protocol],
        spec_protocol=protocol,
        status_checks={"probe": "ok", "export": "ok"},
        faults=faults,
        **network_expectations(protocol),
    )


class TestVmwareDesktopNfsOverSsh(ShareContract):
    @pytest.fixture
    def testbed(self, vmware_ssh: VmwareSshBed, vmshare: Vmshare, servers: FileServers, open_tmp):
        return network_testbed(
            vmware_ssh,
            vmshare,
            servers,
            open_tmp,
            "nfs",
            [guest_frozen(vmware_ssh.guest.dom, "host.nfs_export", "ssh")],
        )

    # prune finds a nfs share by its export and fstab line as on libvirt (TestLibvirtNfs):
    # left out to keep CI short; HGFS is this backend's own
    test_prune_after_a_lost_state_leaves_nothing = None


class TestVmwareDesktopSmbOverSsh(CrashHarnessInFullRunOnly, ShareContract):
    @pytest.fixture
    def testbed(self, vmware_ssh: VmwareSshBed, vmshare: Vmshare, servers: FileServers, open_tmp):
        return network_testbed(
            vmware_ssh,
            vmshare,
            servers,
            open_tmp,
            "smb",
            server_stopped(servers, "smb")[:1],  # stopped mid-add; "down before" is libvirt's
        )

    # prune finds a smb share by its export and fstab line as on libvirt (TestLibvirtSmb):
    # left out to keep CI short; HGFS is this backend's own
    test_prune_after_a_lost_state_leaves_nothing = None
