"""The share contract on vSphere: the simulator's VM stands for the session's test guest (guest
operations reach it through the test bed), shared over NFS by the loopback nfs-ganesha. SMB on
vSphere runs in tests/integration/test_vsphere_share.py; the SMB path itself is the same code
the libvirt SMB class runs in full.

vmshare reaches the simulator through a loopback TCP proxy (tests/testbed/stalls.py TcpProxy)
that the faults cut: the simulator keeps its state in memory, so killing it would also wipe
whatever vmshare left on the VM and hide it from the "nothing left" check. A proxy that refuses
new connections and resets the open ones is what a client sees of a vCenter that was killed;
one that holds every byte is a vCenter that accepts and never answers; the VM behind keeps its
records for the check."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from tests.contract.share import ShareContract, ShareTestbed, network_expectations
from tests.testbed.faults import Fault, guest_frozen
from tests.testbed.fixtures import (
    OWNER,
    FileServers,
    Guest,
    Vmshare,
    VsphereBed,
    exported,
    vsphere_table,
)
from tests.testbed.stalls import TcpProxy
from tests.testbed.vcsim import Vcsim
from vmshare.backends.vsphere.backend import VsphereBackend
from vmshare.backends.vsphere.session import CONNECT_TIMEOUT

pytestmark = pytest.mark.integration

RECORD = "hypervisor.record_share"  # the step that writes vmshare's record into the VM
FULL_DATASTORE = "Unable to write VMX file: /vmfs/volumes/ds1/vm.vmx: No space left on device"


@pytest.fixture(scope="module")
def vcenter_proxy(vcsim: Vcsim) -> Iterator[TcpProxy]:
    with TcpProxy(vcsim.host, vcsim.port) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def proxied_config(vsphere: VsphereBed, servers: FileServers, vcsim: Vcsim, vcenter_proxy) -> str:
    """host.toml whose [vm.NAME] reaches the simulator through the proxy."""
    config = vsphere.host_config.with_name("host-vsphere-proxied.toml")
    table = vsphere_table(vcsim, server=f"127.0.0.1:{vcenter_proxy.port}")
    config.write_text(servers.host_config.read_text() + "\n" + table)
    return str(config)


def set_power(vcsim: Vcsim, on: bool) -> Callable[[], None]:
    """Power the simulated VM on or off through the vSphere API (what a user in the vSphere
    client does); nothing when it already is."""

    def change() -> None:
        with vcsim.connected() as si:
            vm = vim.VirtualMachine(vcsim.vm_ref, si._stub)
            if (vm.runtime.powerState == "poweredOn") != on:
                WaitForTask(vm.PowerOnVM_Task() if on else vm.PowerOffVM_Task())

    return change


def vsphere_faults(vcsim: Vcsim, proxy: TcpProxy, guest: Guest) -> list[Fault]:
    vcenter = rf"vSphere at https://127\.0\.0\.1:{proxy.port}"

    return [
        # killed right after the record was written: the record stays until `remove`
        Fault(
            "vCenter stopped",
            RECORD,
            inject=proxy.stop,
            restore=proxy.start,
            error=rf"{vcenter} (dropped the connection mid-request|refused the connection)",
            point="completed",
            bound=60,
        ),
        # silent while the record is being written: the request and the rollback's each wait
        # out the session's deadline (the logout after them waits 5 s at most)
        Fault(
            "vCenter never answers",
            RECORD,
            inject=proxy.freeze,
            restore=proxy.thaw,
            error=rf"{vcenter} did not answer within {CONNECT_TIMEOUT:g} s",
            bound=3 * CONNECT_TIMEOUT,
        ),
        Fault(
            "a vSphere task fails",
            RECORD,
            inject=lambda: vcsim.fail_next_task("ReconfigVM_Task", FULL_DATASTORE),
            restore=vcsim.clear_faults,
            error="vSphere could not change the VM's configuration .*No space left on device",
            bound=60,
        ),
        guest_frozen(
            guest.dom,
            RECORD,
            "VMware Tools in the guest does not answer guest operations",
            bound=60,
        ),
        Fault(
            "guest powered off",
            RECORD,
            inject=set_power(vcsim, on=False),
            restore=set_power(vcsim, on=True),
            error="the VM is powered off, this needs it powered on",
            point="completed",
            bound=60,
        ),
    ]


class TestVsphereNfs(ShareContract):
    @pytest.fixture
    def testbed(
        self,
        guest: Guest,
        vmshare: Vmshare,
        servers: FileServers,
        vsphere: VsphereBed,
        vcsim: Vcsim,
        vcenter_proxy: TcpProxy,
        proxied_config: str,
        open_tmp,
        monkeypatch,
    ):
        vmshare.env.update(vsphere.env)
        vmshare.env["VMSHARE_HOST_CONFIG"] = proxied_config
        for name, value in vsphere.env.items():  # for reading the VM's records in this process
            monkeypatch.setenv(name, value)

        def records() -> object:  # the VM's own definition: vmshare's records on it (direct)
            backend = VsphereBackend(vsphere.settings())
            try:
                with backend.sdk_errors():
                    return backend.inspect(vsphere.vm).records
            finally:
                backend.close()

        return ShareTestbed(
            vm=vsphere.vm,
            guest=guest,
            cli=vmshare,
            protocol="nfs",
            backend=None,  # the VM's settings come from host.toml
            tmp=open_tmp,
            owner=OWNER,
            devices=lambda live: {},  # vSphere has no share device
            exports=lambda: exported(servers, "nfs"),
            vm_config=records,
            status_checks={"probe": "ok", "export": "ok", "record": "ok"},
            faults=vsphere_faults(vcsim, vcenter_proxy, guest),
            **network_expectations("nfs", rollback_undone=3),  # the record on the VM too
        )
