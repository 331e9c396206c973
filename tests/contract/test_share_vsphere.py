"""The share contract on vSphere: the simulator's VM stands for the session's test guest (guest
operations reach it through the test bed), shared over NFS by the loopback nfs-ganesha. SMB on
vSphere runs in tests/integration/test_vsphere_share.py; the SMB path itself is the same code
the libvirt SMB class runs in full."""

from __future__ import annotations

import pytest

from tests.contract.share import ShareContract, ShareTestbed, network_expectations
from tests.testbed.fixtures import OWNER, FileServers, Guest, Vmshare, VsphereBed, exported
from vmshare.backends.vsphere.backend import VsphereBackend

pytestmark = pytest.mark.integration


class TestVsphereNfs(ShareContract):
    @pytest.fixture
    def testbed(
        self,
        guest: Guest,
        vmshare: Vmshare,
        servers: FileServers,
        vsphere: VsphereBed,
        open_tmp,
        monkeypatch,
    ):
        vmshare.env.update(vsphere.env)
        for name, value in vsphere.env.items():  # for reading the VM's records in this process
            monkeypatch.setenv(name, value)

        def records() -> object:  # the VM's own definition: vmshare's records on it
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
            **network_expectations("nfs", rollback_undone=3),  # the record on the VM too
        )
