"""test_vsphere_lab.py's scenario run against the simulator and the QEMU test guest, so the lab
test's own code (its spec, its guest checks through VMware Tools, its record and secret checks)
runs in every CI run, not only where a lab is configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_vsphere_lab as lab_test
from tests.testbed.fixtures import FileServers, Guest, Vmshare
from tests.testbed.vcsim import Vcsim

from vmshare.backends.vsphere.backend import VsphereBackend
from vmshare.spec import load_spec

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("protocol", ["nfs", "smb"])
def test_the_lab_scenario_against_the_simulator(
    guest: Guest,
    servers: FileServers,
    vcsim: Vcsim,
    open_tmp: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
) -> None:
    monkeypatch.setenv("VMSHARE_VSPHERE_PASSWORD", vcsim.password)
    monkeypatch.setenv("VMSHARE_VSPHERE_GUEST_PASSWORD", vcsim.guest_password)
    lab = lab_test.Lab(
        server=f"{vcsim.host}:{vcsim.port}",
        user=vcsim.username,
        vm=vcsim.vm,
        guest_user=vcsim.guest_user,
        ca_file=str(vcsim.ca_file),
        insecure=False,
        datacenter="DC0",
        host_config=str(servers.host_config),
        host_address=None,
    )
    path = tmp_path / "vm.toml"
    path.write_text(lab_test.lab_vm_table(lab))
    settings = load_spec(path).vm[lab.vm]
    backend = VsphereBackend(settings)  # type: ignore[arg-type]
    runner = Vmshare(tmp_path / "state", {"VMSHARE_HOST_CONFIG": str(servers.host_config)})
    try:
        with backend.sdk_errors():
            lab_guest = lab_test.LabGuest(backend.guest_channel(settings))
        lab_test.test_lab_doctor(lab, runner, tmp_path)
        work = tmp_path / "share"
        work.mkdir()
        lab_test.test_lab_share_round_trips_and_remove_leaves_nothing(
            lab, lab_guest, runner, open_tmp, work, protocol
        )
    finally:
        for share in runner.shares():
            runner("remove", share["key"], "--yes")
        backend.close()
    everything = "\n".join(runner.transcript)
    assert vcsim.password not in everything and vcsim.guest_password not in everything
