"""The share contract on libvirt (QEMU/KVM), one class per protocol: virtiofs, 9p, NFS to
nfs-ganesha and SMB to Samba, all on the session's test guest and loopback servers.

Which tests run where (CI time: every class shares one booted guest):
- virtiofs, nfs, smb: the whole contract.
- 9p: the round trip and bad input, and the crash harness in the full run only. A 9p device
  cannot be hot-plugged here, so each add and remove restarts the VM (~10 s each under TCG);
  hostile paths, apply/prune, concurrent adds and the rollback go through the same plan, CLI and
  guest code as virtiofs, which runs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.contract.share import (
    CrashHarnessInFullRunOnly,
    ShareContract,
    ShareTestbed,
    network_expectations,
)
from tests.testbed.domain import wait_for_agent
from tests.testbed.faults import Fault, guest_frozen
from tests.testbed.fixtures import OWNER, FileServers, Guest, Vmshare, exported
from tests.testbed.stalls import FreezableProxy

pytestmark = pytest.mark.integration


def domain_xml(guest: Guest) -> tuple[str, str]:
    """The domain's live and persistent XML, without the live domain's id and the paths named
    after it (new ones at each start: the guest-powered-off fault starts it again)."""
    live = re.sub(r"^<domain type='(\w+)' id='\d+'", r"<domain type='\1'", guest.dom.XMLDesc(0))
    return re.sub(r"/domain-\d+-", "/domain-N-", live), guest.dom.XMLDesc(2)


def guest_faults(guest: Guest, step: str) -> list[Fault]:
    """The guest frozen (paused) and the guest powered off, right after ``step``."""

    def power_on() -> None:
        if not guest.dom.isActive():
            guest.dom.create()
            wait_for_agent(guest.dom)

    return [
        guest_frozen(guest.dom, step, "is paused", bound=150),
        Fault(
            "guest powered off",
            step,
            inject=guest.dom.destroy,
            restore=power_on,
            error="is shut off",
            point="completed",
        ),
    ]


@pytest.fixture
def libvirt_proxy() -> Iterator[FreezableProxy]:
    """A path to libvirtd that can stop answering: "a hypervisor that accepts and never
    answers", mid-add."""
    with FreezableProxy() as proxy:
        yield proxy


class TestLibvirtVirtiofs(ShareContract):
    @pytest.fixture
    def testbed(self, guest: Guest, vmshare: Vmshare, open_tmp, libvirt_proxy: FreezableProxy):
        silent = Fault(
            "libvirtd never answers",
            "hypervisor.attach",
            inject=libvirt_proxy.freeze,
            restore=libvirt_proxy.thaw,
            error="libvirt",
            point="completed",
            args=("-c", libvirt_proxy.uri),
        )
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
            faults=[silent, *guest_faults(guest, "hypervisor.attach")],
        )


class TestLibvirt9p(CrashHarnessInFullRunOnly, ShareContract):
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

    # each fault's add restarts the VM twice (~20 s under TCG); virtiofs meets them all
    test_faults_mid_add_end_in_bounded_time_and_leave_nothing = None

    # each 9p add and remove restarts the VM: see the module's docstring
    test_hostile_host_and_guest_paths_share_correctly = None
    test_failure_in_the_guest_rolls_back = None
    test_apply_is_idempotent_and_prune_removes_what_the_file_dropped = None
    test_two_adds_at_the_same_moment_both_land = None
    # a 9p device leaves the running VM only at a restart; prune's restart step is unit-tested
    test_prune_after_a_lost_state_leaves_nothing = None
    # the crash harness runs in the full run only (each of its points restarts the VM once or
    # twice); domain_xml leaves out the live id and paths a restart renumbers


def server_stopped(servers: FileServers, protocol: str) -> list[Fault]:
    """The protocol's file server stopped right after vmshare exported the share on it (the
    guest's mount is refused), and already stopped when vmshare exports it (the reload finds
    no server). Both roll back completely: an entry taken out of a stopped server's config
    needs no reload."""
    if protocol == "nfs":
        server, step, what = servers.ganesha, "host.nfs_export", "NFS"
        down = r"nfs-ganesha is not running \(no pid file .*ganesha\.pid\)"
    else:
        server, step, what = servers.samba, "host.smb_share", "SMB"
        down = r"Samba is not running: smbcontrol finds no smbd for .*smb\.conf"
    refused = rf"connection refused at 10\.0\.2\.2:{server.port}: the {what} server is not"
    return [
        Fault(
            f"{server.name} stopped",
            step,
            inject=server.stop,
            restore=lambda: server.pid is None and server.restart(),
            error=refused,
            point="completed",
            bound=60,  # the mount retry bound (10 s) and a rollback, on a loaded TCG guest
            exit=3,  # the rollback finishes: a stopped server needs no reload
        ),
        Fault(
            f"{server.name} down before the export",
            step,
            inject=server.stop,
            restore=lambda: server.pid is None and server.restart(),
            error=down,
            point="intent",
            bound=30,  # no guest step runs: the reload fails at once
            exit=3,
        ),
    ]


def network_testbed(guest, vmshare, servers, open_tmp, protocol) -> ShareTestbed:
    vmshare.env["VMSHARE_HOST_CONFIG"] = str(servers.host_config)
    faults = server_stopped(servers, protocol)
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
        faults=faults,
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
