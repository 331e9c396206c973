"""The share contract on libvirt (QEMU/KVM), one class per protocol: virtiofs, 9p, NFS to
nfs-ganesha and SMB to Samba, all on the session's test guest and loopback servers.

Which tests run where (CI time: every class shares one booted guest):
- virtiofs, nfs, smb: the whole contract.
- 9p: the round trip and bad input. A 9p device cannot be hot-plugged here, so each add and
  remove restarts the VM (~10 s each under TCG); hostile paths, apply/prune, concurrent adds and
  the rollback go through the same plan, CLI and guest code as virtiofs, which runs them.
"""

from __future__ import annotations

import pytest

from tests.contract.share import (
    CrashHarnessInFullRunOnly,
    ShareContract,
    ShareTestbed,
    network_expectations,
)
from tests.testbed.fixtures import OWNER, FileServers, Guest, Vmshare, exported

pytestmark = pytest.mark.integration


def domain_xml(guest: Guest) -> tuple[str, str]:
    return guest.dom.XMLDesc(0), guest.dom.XMLDesc(2)  # live, persistent


class TestLibvirtVirtiofs(ShareContract):
    @pytest.fixture
    def testbed(self, guest: Guest, vmshare: Vmshare, open_tmp):
        return ShareTestbed(
            vm=guest.name,
            guest=guest,
            cli=vmshare,
            protocol="virtiofs",
            mount_types={"virtiofs"},
            mount_source=lambda tag: tag,
            tmp=open_tmp,
            devices=lambda live: guest.filesystems(live=live),
            exports=dict,
            vm_config=lambda: domain_xml(guest),
            fstab_line=lambda tag, target: f"{tag} {target} virtiofs rw,nofail 0 0",
        )


class TestLibvirt9p(ShareContract):
    @pytest.fixture
    def testbed(self, guest: Guest, vmshare: Vmshare, open_tmp):
        return ShareTestbed(
            vm=guest.name,
            guest=guest,
            cli=vmshare,
            protocol="9p",
            mount_types={"9p"},
            mount_source=lambda tag: tag,
            tmp=open_tmp,
            devices=lambda live: guest.filesystems(live=live),
            exports=dict,
            vm_config=lambda: domain_xml(guest),
            add_args=["--protocol", "9p", "--restart"],
            remove_args=["--restart"],
            spec_protocol="9p",
        )

    # each 9p add and remove restarts the VM: see the module's docstring
    test_hostile_host_and_guest_paths_share_correctly = None
    test_failure_in_the_guest_rolls_back = None
    test_apply_is_idempotent_and_prune_removes_what_the_file_dropped = None
    test_two_adds_at_the_same_moment_both_land = None
    # a 9p device leaves the running VM only at a restart; prune's restart step is unit-tested
    test_prune_after_a_lost_state_leaves_nothing = None
    # each restart renumbers the live domain (its id), which the harness's "nothing left"
    # compares; the plan, journal and executor it kills are the ones virtiofs's harness runs
    test_sigkill_mid_add_then_rerun_converges_and_remove_leaves_nothing = None
    test_sigint_mid_add_rolls_back_to_exactly_before = None


def network_testbed(guest, vmshare, servers, open_tmp, protocol) -> ShareTestbed:
    vmshare.env["VMSHARE_HOST_CONFIG"] = str(servers.host_config)
    return ShareTestbed(
        vm=guest.name,
        guest=guest,
        cli=vmshare,
        protocol=protocol,
        tmp=open_tmp,
        owner=OWNER,
        devices=lambda live: guest.filesystems(live=live),  # no device may appear
        exports=lambda: exported(servers, protocol),
        vm_config=lambda: domain_xml(guest),
        add_args=["--protocol", protocol],
        spec_protocol=protocol,
        status_checks={"probe": "ok", "export": "ok"},
        **network_expectations(protocol),
    )


class TestLibvirtNfs(CrashHarnessInFullRunOnly, ShareContract):
    @pytest.fixture
    def testbed(self, guest: Guest, vmshare: Vmshare, servers: FileServers, open_tmp):
        return network_testbed(
            guest,
            vmshare,
            servers,
            open_tmp,
            "nfs",
        )


class TestLibvirtSmb(CrashHarnessInFullRunOnly, ShareContract):
    @pytest.fixture
    def testbed(self, guest: Guest, vmshare: Vmshare, servers: FileServers, open_tmp):
        return network_testbed(
            guest,
            vmshare,
            servers,
            open_tmp,
            "smb",
        )
