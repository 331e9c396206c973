"""A vSphere share end to end: real pyVmomi against the vCenter simulator, whose VM stands for the
real QEMU test guest (guest operations reach it through the test bed), exported by the real
nfs-ganesha or Samba on loopback and mounted in that guest, with vmshare's record of it in the
VM's extraConfig, seen from a second workstation's (empty) state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.testbed.fixtures import (
    OWNER,
    FileServers,
    Guest,
    Vmshare,
    exported,
    make_tree,
    tree_digest,
    vsphere_table,
)
from tests.testbed.vcsim import Vcsim

from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration


def vsphere_spec(path: Path, vcsim: Vcsim, *shares: tuple[Path, str, str]) -> Path:
    text = vsphere_table(vcsim)
    for source, target, protocol in shares:
        text += (
            f'[[share]]\nsource = "{source}"\nvm = "{vcsim.vm}"\ntarget = "{target}"\n'
            f'protocol = "{protocol}"\nowner = "{OWNER[0]}:{OWNER[1]}"\n'
        )
    path.write_text(text)
    return path


@pytest.fixture
def vc(vmshare: Vmshare, servers: FileServers, vcsim: Vcsim) -> Vmshare:
    vmshare.env.update(
        VMSHARE_HOST_CONFIG=str(servers.host_config),
        VMSHARE_IT_VC_PASSWORD=vcsim.password,
        VMSHARE_IT_GUEST_PASSWORD=vcsim.guest_password,
    )
    return vmshare


def extra_config(vcsim: Vcsim, key: str) -> list[str]:
    """Every value the simulated VM's extraConfig holds under ``key``, in order (the simulator
    appends a key again instead of replacing it), read with pyVmomi apart from vmshare."""
    with vcsim.connected() as si:
        content = si.RetrieveContent()
        (datacenter,) = content.rootFolder.childEntity
        vm = content.searchIndex.FindByInventoryPath(f"{datacenter.name}/vm/{vcsim.vm}")
        return [str(o.value) for o in vm.config.extraConfig or [] if o.key == key]


@pytest.mark.parametrize("protocol", ["nfs", "smb"])
def test_vsphere_share_round_trips_and_remove_leaves_nothing(
    guest: Guest, vc: Vmshare, vcsim: Vcsim, servers: FileServers, open_tmp, tmp_path, protocol
):
    src = make_tree(open_tmp / f"vc-{protocol}", OWNER)
    target = f"/mnt/vc-{protocol}"
    key = f"{vcsim.vm}:{target}"
    tag = mount_tag(key)
    spec = vsphere_spec(tmp_path / "vmshare.toml", vcsim, (src, target, protocol))
    before, fstab_before = tree_digest(src), guest.fstab()

    dry = vc.json("apply", "-f", str(spec), "--dry-run")
    reasons = " ".join(c["reason"] for c in dry["data"]["plan"]["choices"])
    assert "127.0.0.1" in " ".join(s["summary"] for s in dry["data"]["plan"]["steps"]), dry
    assert "guest tools" in " ".join(s.get("reason") or "" for s in dry["data"]["plan"]["steps"]), (
        reasons
    )

    record_key = f"guestinfo.vmshare.{tag}"
    assert f"extraConfig {record_key}" in " ".join(
        s["summary"] for s in dry["data"]["plan"]["steps"]
    )

    vc("apply", "-f", str(spec), "--yes", check=True)
    assert tag in exported(servers, protocol)
    # vmshare's record on the VM, as another workstation or the guest sees it
    record = json.loads(extra_config(vcsim, record_key)[-1])
    assert record["key"] == key and record["source"] == str(src)
    assert (record["target"], record["protocol"], record["readonly"]) == (target, protocol, False)
    assert record["host"] and record["created"] and "password" not in json.dumps(record)
    other = Vmshare(tmp_path / "other-workstation", dict(vc.env))
    listed = other.json("list", "--vm", vcsim.vm, "-f", str(spec))["data"]
    mine = [row for row in listed if row["key"] == key]
    assert [(r["made"], r["host"], r["record"]) for r in mine] == [
        ("elsewhere", record["host"], "recorded")
    ]
    assert other.shares() == []
    (row,) = [h for h in vc.json("status", vcsim.vm)["data"] if h["key"] == key]
    assert row["checks"]["record"] == "ok", row
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    code, _, err = guest.sh('printf "from the guest" > "$1/guest.txt"', target)
    assert code == 0, err
    assert (src / "guest.txt").read_text() == "from the guest"
    (src / "guest.txt").unlink()
    assert vc.json("apply", "-f", str(spec), "--dry-run")["data"]["plan"]["steps"] == []

    vc("remove", key, "--yes", check=True)
    assert target not in guest.mounts() and guest.fstab() == fstab_before
    assert tag not in exported(servers, protocol)
    assert tree_digest(src) == before
    assert vc.shares() == []
    assert extra_config(vcsim, record_key)[-1] == ""  # deleted (the simulator keeps the key)
    listed = other.json("list", "--vm", vcsim.vm, "-f", str(spec))["data"]
    assert key not in [row["key"] for row in listed]


def test_add_takes_the_vms_settings_from_host_toml_and_its_dry_run_shows_every_step(
    guest: Guest, vc: Vmshare, vcsim: Vcsim, servers: FileServers, open_tmp, tmp_path
):
    """The issue's check: `vmshare add DIR vm:/mnt/x --backend vsphere --dry-run` prints the
    VM's address, the export and the guest steps; the VM's settings live in host.toml."""
    host_toml = tmp_path / "host.toml"
    table = vsphere_spec(tmp_path / "vm.toml", vcsim).read_text()
    host_toml.write_text(servers.host_config.read_text() + "\n" + table)
    vc.env["VMSHARE_HOST_CONFIG"] = str(host_toml)
    src = make_tree(open_tmp / "vc-add", OWNER)
    owner = f"{OWNER[0]}:{OWNER[1]}"
    args = ("add", str(src), f"{vcsim.vm}:/mnt/vc-add", "--owner", owner)
    shown = vc(*args, "--backend", "vsphere", "--dry-run", check=True).stdout
    flat = " ".join(shown.split())
    assert "export" in flat and "127.0.0.1" in flat  # the export, to the VM's address
    assert "guest tools" in flat  # why that address
    assert "mount" in flat and "/mnt/vc-add" in flat and "fstab" in flat  # the guest steps
    wrong = vc(*args, "--backend", "libvirt", "--dry-run")
    assert wrong.returncode == 2 and "is a vsphere VM in host.toml" in wrong.stderr
