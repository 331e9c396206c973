"""NFS (nfs-ganesha) and SMB (Samba) on loopback, mounted by the real guest through vmshare."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import (
    OWNER,
    SMB_ACCOUNT,
    FileServers,
    Guest,
    Vmshare,
    exported,
    make_tree,
    tree_digest,
)
from vmshare.formats import ownedblock
from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration


@pytest.fixture
def net(vmshare: Vmshare, servers: FileServers) -> Vmshare:
    vmshare.env["VMSHARE_HOST_CONFIG"] = str(servers.host_config)
    return vmshare


@pytest.mark.parametrize("protocol", ["nfs", "smb"])
def test_network_share_round_trips_then_remove_closes_the_export(
    guest: Guest, net: Vmshare, servers: FileServers, tmp_path, protocol, open_tmp
):
    src = make_tree(open_tmp / protocol, OWNER)
    target = f"/mnt/{protocol}"
    tag = mount_tag(f"{guest.name}:{target}")
    fstab_before = guest.fstab()

    result = net.json("add", str(src), f"{guest.name}:{target}", "--protocol", protocol)
    assert result["ok"], result
    assert tag in exported(servers, protocol)
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert guest.read(f"{target}/sub/deeper/data.bin") == bytes(range(256)) * 64
    code, _, err = guest.sh('printf "from the guest" > "$1/guest.txt"', target)
    assert code == 0, err
    assert (src / "guest.txt").read_text() == "from the guest"
    assert guest.mounts()[target][1] in ({"nfs", "nfs4"} if protocol == "nfs" else {"cifs", "smb3"})
    status = net.json("status")
    assert status["ok"], status
    assert status["data"][0]["checks"]["export"] == "ok"
    assert (
        net.json("add", str(src), f"{guest.name}:{target}", "--protocol", protocol, "--dry-run")[
            "data"
        ]["plan"]["steps"]
        == []
    )
    if protocol == "smb":
        cred = f"/etc/vmshare/{tag}.cred"
        assert guest.sh('stat -c %a "$1"', cred)[1].strip() == b"600"

    if protocol == "smb":  # a live session to the server must not keep the removed share open
        keep = make_tree(open_tmp / "keep", OWNER)
        net("add", str(keep), f"{guest.name}:/mnt/keep", "--protocol", "smb", check=True)
    before = tree_digest(src)
    net("remove", f"{guest.name}:{target}", check=True)
    assert tag not in exported(servers, protocol)
    assert target not in guest.mounts()
    assert tag not in ownedblock.entries(guest.fstab())
    assert tree_digest(src) == before
    if protocol == "smb":
        assert guest.run("test", "-e", f"/etc/vmshare/{tag}.cred")[0] != 0
    # the server itself now refuses the share
    assert guest.run("mkdir", "-p", "/mnt/refused")[0] == 0
    if protocol == "nfs":
        argv = [
            "mount",
            "-t",
            "nfs",
            "-o",
            f"port={servers.ganesha.port}",
            f"10.0.2.2:/vmshare/{tag}",
            "/mnt/refused",
        ]
    else:  # with the real account and password: only the missing share can make it fail
        password = (net.state_dir / "secrets" / f"smb-{SMB_ACCOUNT}").read_bytes().strip()
        creds = f"username={SMB_ACCOUNT}\npassword=".encode() + password + b"\n"
        assert guest.sh("umask 077; cat > /root/cred", stdin=creds)[0] == 0
        options = f"credentials=/root/cred,vers=3.1.1,seal,port={servers.samba.port}"
        argv = ["mount.cifs", f"//10.0.2.2/{tag}", "/mnt/refused", "-o", options]
    code, _, _ = guest.run(*argv)
    guest.run("umount", "/mnt/refused")
    assert code != 0
    if protocol == "smb":
        net("remove", f"{guest.name}:/mnt/keep", check=True)
    assert guest.fstab() == fstab_before


@pytest.mark.parametrize("protocol", ["nfs", "smb"])
def test_readonly_is_enforced_by_the_server(
    guest: Guest, net: Vmshare, tmp_path, protocol, open_tmp
):
    src = make_tree(open_tmp / f"ro-{protocol}", OWNER)
    before = tree_digest(src)
    target = f"/mnt/ro-{protocol}"
    net("add", str(src), f"{guest.name}:{target}", "--protocol", protocol, "--readonly", check=True)
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert guest.sh('echo x > "$1/nope.txt"', target)[0] != 0
    # a guest root that remounts read-write still cannot write: the server refuses
    assert guest.run("mount", "-o", "remount,rw", target)[0] == 0
    assert guest.sh('echo x > "$1/nope.txt"', target)[0] != 0
    assert tree_digest(src) == before
    net("remove", f"{guest.name}:{target}", check=True)


def test_no_password_appears_anywhere(
    guest: Guest, net: Vmshare, servers: FileServers, tmp_path, open_tmp
):
    src = make_tree(open_tmp / "secret", OWNER)
    target = "/mnt/secret"
    net("add", str(src), f"{guest.name}:{target}", "--protocol", "smb", check=True)
    password = (net.state_dir / "secrets" / f"smb-{SMB_ACCOUNT}").read_text().strip()
    net("plan", "-f", str(_spec(tmp_path, src, guest.name, target)))
    net("status", "--json")
    net("list", "--json")
    net("add", str(src), f"{guest.name}:{target}", "--protocol", "smb", "--json", "--dry-run")
    net("remove", f"{guest.name}:{target}", check=True)
    assert len(password) > 30
    assert all(password not in out for out in net.transcript)
    for path in net.state_dir.rglob("*"):
        if path.is_file() and "secrets" not in path.parts:
            assert password not in path.read_text(errors="replace"), path
    for path in (servers.host_config.parent).rglob("*"):
        if path.is_file() and path.stat().st_size < 10_000_000:
            assert password not in path.read_text(errors="replace"), path


def _spec(tmp_path: Path, src: Path, vm: str, target: str) -> Path:
    spec = tmp_path / "vmshare.toml"
    spec.write_text(
        f'[[share]]\nsource = "{src}"\nvm = "{vm}"\ntarget = "{target}"\nprotocol = "smb"\n'
    )
    return spec


def test_two_network_adds_at_the_same_moment_both_land(
    guest: Guest, net: Vmshare, servers: FileServers, tmp_path, open_tmp
):
    sources = [make_tree(open_tmp / f"n{i}", OWNER) for i in range(2)]
    results = net.at_once(
        *(
            ["add", str(src), f"{guest.name}:/mnt/n{i}", "--protocol", "nfs"]
            for i, src in enumerate(sources)
        )
    )
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    entries = exported(servers, "nfs")
    assert {mount_tag(f"{guest.name}:/mnt/n{i}") for i in range(2)} <= set(entries)
    for i in range(2):
        assert guest.read(f"/mnt/n{i}/hello.txt") == b"hello from the host\n"


def test_addresses_come_from_the_guest_agent_and_route(guest: Guest):
    from vmshare.backends.libvirt.agent import AgentChannel
    from vmshare.backends.libvirt.backend import LibvirtBackend
    from vmshare.backends.libvirt.settings import LibvirtVm
    from vmshare.guest.linux import LinuxGuest

    backend = LibvirtBackend(LibvirtVm(name="vmshare-probe"))
    facts = backend.inspect(guest.name)
    assert "10.0.2.15" in facts.addresses  # from the agent's interface list
    assert facts.capabilities.nat is not None and facts.capabilities.nat.client == "127.0.0.1"
    channel = AgentChannel(lambda: backend.domain(guest.name), guest.name)
    assert LinuxGuest(channel, guest.name).inspect([]).gateway == "10.0.2.2"
    backend.close()


def test_nfs_owner_maps_every_guest_write(guest: Guest, net: Vmshare, tmp_path):
    src = make_tree(tmp_path / "owned")
    refused = net(
        "add", str(src), f"{guest.name}:/mnt/owned", "--protocol", "nfs", "--owner", "4321:8765"
    )
    assert refused.returncode == 2 and "cannot write" in refused.stderr
    os.chown(src, 4321, 8765)
    net(
        "add",
        str(src),
        f"{guest.name}:/mnt/owned",
        "--protocol",
        "nfs",
        "--owner",
        "4321:8765",
        check=True,
    )
    assert guest.sh('echo hi > "$1/new.txt"', "/mnt/owned")[0] == 0
    made = (src / "new.txt").stat()
    assert (made.st_uid, made.st_gid) == (4321, 8765)
    net("remove", f"{guest.name}:/mnt/owned", check=True)


def test_network_shares_come_back_after_a_guest_reboot(
    guest: Guest, net: Vmshare, tmp_path, open_tmp
):
    for protocol in ("nfs", "smb"):
        src = make_tree(open_tmp / f"boot-{protocol}", OWNER)
        net(
            "add",
            str(src),
            f"{guest.name}:/mnt/boot-{protocol}",
            "--protocol",
            protocol,
            "--readonly",
            check=True,
        )
    guest.reboot()
    mounts = guest.mounts()
    assert mounts["/mnt/boot-nfs"][1] == "nfs4" and "vers=4.2" in mounts["/mnt/boot-nfs"][2]
    assert mounts["/mnt/boot-smb"][1] == "cifs" and mounts["/mnt/boot-smb"][2].startswith("ro")
    for protocol in ("nfs", "smb"):
        assert guest.read(f"/mnt/boot-{protocol}/hello.txt") == b"hello from the host\n"
    assert net.json("status")["ok"]
