"""`apply` on a small fleet of vSphere VMs at once: the vCenter simulator with five VMs, each
standing for the real QEMU test guest (their guest operations all reach that one guest, so each
VM's share has a guest path of its own, and is mounted without an fstab line: five VMs' edits
of that one guest's /etc/fstab at once would be refused as concurrent edits, as they should be),
NFS exports by the real nfs-ganesha on loopback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from tests.testbed.domain import agent_exec
from tests.testbed.fixtures import OWNER, FileServers, Guest, Vmshare, exported, make_tree
from tests.testbed.vcsim import Vcsim

from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration

FLEET = 5


def fleet_spec(path: Path, vcsim: Vcsim, sources: list[Path]) -> Path:
    text = ""
    for index, (vm, source) in enumerate(zip(vcsim.guest_vms, sources, strict=True)):
        text += (
            f'[vm."{vm}"]\nbackend = "vsphere"\nserver = "{vcsim.host}:{vcsim.port}"\n'
            f'user = "{vcsim.username}"\npassword_env = "VMSHARE_IT_VC_PASSWORD"\n'
            f'ca_file = "{vcsim.ca_file}"\n[vm."{vm}".guest]\n'
            f'login_user = "{vcsim.guest_user}"\nlogin_password_env = "VMSHARE_IT_GUEST_PASSWORD"\n'
            f'[[share]]\nsource = "{source}"\nvm = "{vm}"\ntarget = "/mnt/fleet-{index}"\n'
            f'protocol = "nfs"\nowner = "{OWNER[0]}:{OWNER[1]}"\npersist = false\n'
        )
    path.write_text(text)
    return path


def test_a_fleet_is_applied_in_parallel_and_reapplied_as_a_no_op(
    guest: Guest, vmshare: Vmshare, servers: FileServers, open_tmp: Path, tmp_path: Path
):
    def guest_exec(argv: Sequence[str], stdin: bytes | None, timeout: float):
        return agent_exec(guest.dom, argv, stdin=stdin, timeout=timeout)

    with Vcsim(vms=FLEET, guest_vms=FLEET, guest_exec=guest_exec) as vcsim:
        vmshare.env.update(
            VMSHARE_HOST_CONFIG=str(servers.host_config),
            VMSHARE_IT_VC_PASSWORD=vcsim.password,
            VMSHARE_IT_GUEST_PASSWORD=vcsim.guest_password,
        )
        sources = [make_tree(open_tmp / f"fleet-{i}", OWNER) for i in range(FLEET)]
        spec = fleet_spec(tmp_path / "vmshare.toml", vcsim, sources)
        try:
            applied = vmshare.json("apply", "-f", str(spec), "--parallel", "3")
            assert applied["ok"], applied
            results = applied["data"]["vms"]
            assert sorted(r["vm"] for r in results) == sorted(vcsim.guest_vms)
            assert all(r["ok"] and r["done"] for r in results), results
            mounts = guest.mounts()
            for index, vm in enumerate(vcsim.guest_vms):
                assert f"/mnt/fleet-{index}" in mounts
                assert mount_tag(f"{vm}:/mnt/fleet-{index}") in exported(servers, "nfs")
            assert guest.read("/mnt/fleet-4/hello.txt") == b"hello from the host\n"
            assert len(vmshare.shares()) == FLEET

            again = vmshare.json("apply", "-f", str(spec))
            assert again["ok"] and again["data"]["plan"]["steps"] == [], again
        finally:
            removed = vmshare("remove", *vcsim.guest_vms, "--yes")
        assert removed.returncode == 0, removed.stderr
        assert vmshare.shares() == []
        assert not any(f"/mnt/fleet-{i}" in guest.mounts() for i in range(FLEET))
        tags = {mount_tag(f"{vm}:/mnt/fleet-{i}") for i, vm in enumerate(vcsim.guest_vms)}
        assert not tags & set(exported(servers, "nfs"))
