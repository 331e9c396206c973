"""Files vmshare edits, through symlinks, on the host and in the real guest; what a network share
leaves behind; and what guest users can do to the host through nfs-ganesha and Samba."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.testbed.fixtures import (
    OWNER,
    SMB_ACCOUNT,
    FileServers,
    Guest,
    Vmshare,
    make_tree,
    smb_account_exists,
)

from vmshare.formats import ownedblock
from vmshare.protocols import mount_tag
from vmshare.protocols.nfs import SETUID_WARNING

pytestmark = pytest.mark.integration


@pytest.fixture
def net(vmshare: Vmshare, servers: FileServers) -> Vmshare:
    vmshare.env["VMSHARE_HOST_CONFIG"] = str(servers.host_config)
    return vmshare


def _samba_entry_exists(servers: FileServers) -> bool:
    argv = ["pdbedit", "-s", str(servers.samba.config_path), "-u", SMB_ACCOUNT]
    return subprocess.run(argv, capture_output=True).returncode == 0


@pytest.fixture
def symlinked_fstab(guest: Guest) -> Iterator[str]:
    """/etc/fstab as a relative link to a file in a folder of the guest's /etc disk; the guest
    is put back as it was afterwards."""
    script = """set -e
    [ ! -L /etc/fstab ]
    mkdir -p /etc/vmshare-it
    mv /etc/fstab /etc/vmshare-it/fstab.real
    ln -s vmshare-it/fstab.real /etc/fstab
    sync
    """
    code, _, err = guest.sh(script)
    assert code == 0, err
    yield "/etc/vmshare-it/fstab.real"
    restore = """set -e
    rm -f /etc/fstab
    mv /etc/vmshare-it/fstab.real /etc/fstab
    rm -rf /etc/vmshare-it
    sync
    """
    code, _, err = guest.sh(restore)
    assert code == 0, err


def test_a_symlinked_guest_fstab_stays_a_link_and_the_share_comes_back_after_a_reboot(
    guest: Guest, net: Vmshare, tmp_path, symlinked_fstab, open_tmp
):
    real = symlinked_fstab
    before = guest.read(real)
    # a backup beside the link may be left by earlier edits of the plain file: it must not change
    old_bak = guest.sh("cat /etc/fstab.vmshare-bak 2>/dev/null || echo none")[1]
    src = make_tree(open_tmp / "fstab-link", OWNER)
    target = "/mnt/fstab-link"
    tag = mount_tag(f"{guest.name}:{target}")
    net("add", str(src), f"{guest.name}:{target}", "--protocol", "nfs", check=True)
    assert guest.run("readlink", "/etc/fstab")[1].strip() == b"vmshare-it/fstab.real"
    assert tag in ownedblock.entries(guest.read(real).decode())
    assert guest.read(real + ".vmshare-bak") == before  # the backup sits next to the real file
    assert guest.sh("cat /etc/fstab.vmshare-bak 2>/dev/null || echo none")[1] == old_bak
    guest.reboot()
    assert guest.mounts()[target][1] == "nfs4"  # mounted from the real file at boot
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    net("remove", f"{guest.name}:{target}", check=True)
    assert guest.run("readlink", "/etc/fstab")[1].strip() == b"vmshare-it/fstab.real"
    assert guest.read(real) == before


@pytest.fixture
def symlinked_smb_conf(servers: FileServers) -> Iterator[Path]:
    """The loopback Samba's smb.conf as a link to the real file in another folder."""
    link = servers.samba.config_path
    real = link.parent / "dist" / "smb.conf"
    real.parent.mkdir(exist_ok=True)
    shutil.move(link, real)
    link.symlink_to(Path("dist") / "smb.conf")
    yield real
    link.unlink()
    shutil.move(real, link)
    (real.parent / "smb.conf.vmshare-bak").unlink(missing_ok=True)
    real.parent.rmdir()


def test_a_symlinked_smb_conf_stays_a_link(
    guest: Guest, net: Vmshare, servers: FileServers, tmp_path, symlinked_smb_conf, open_tmp
):
    real = symlinked_smb_conf
    link = servers.samba.config_path
    original = real.read_text()
    src = make_tree(open_tmp / "smb-link", OWNER)
    target = "/mnt/smb-link"
    net("add", str(src), f"{guest.name}:{target}", "--protocol", "smb", check=True)
    assert os.readlink(link) == "dist/smb.conf"
    assert "include = " in ownedblock.entries(real.read_text()).get("include", "")
    assert (real.parent / "smb.conf.vmshare-bak").read_text() == original
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    net("remove", f"{guest.name}:{target}", check=True)
    assert os.readlink(link) == "dist/smb.conf" and real.read_text() == original


def test_a_failed_samba_run_leaves_no_include_file_and_no_account(
    guest: Guest, net: Vmshare, servers: FileServers, tmp_path, open_tmp
):
    """smbd is not running for this smb.conf: its reload fails, and the run undoes itself."""
    down = tmp_path / "down"
    (down / "pid").mkdir(parents=True)
    conf = down / "smb.conf"
    text = servers.samba.config_path.read_text()
    text = "\n".join(
        f"    pid directory = {down / 'pid'}" if line.strip().startswith("pid directory") else line
        for line in text.splitlines()
    )
    conf.write_text(text + "\n")
    host = tmp_path / "host.toml"
    host.write_text(
        servers.host_config.read_text()
        .replace(str(servers.samba.config_path), str(conf))
        .replace(str(servers.host_config.parent / "samba" / "vmshare.conf"), str(down / "v.conf"))
    )
    assert not smb_account_exists()
    net.env["VMSHARE_HOST_CONFIG"] = str(host)
    src = make_tree(open_tmp / "failed", OWNER)
    result = net("add", str(src), f"{guest.name}:/mnt/failed", "--protocol", "smb")
    assert result.returncode != 0
    assert sorted(p.name for p in down.iterdir()) == ["pid", "smb.conf"]
    assert conf.read_text() == text + "\n"
    assert not smb_account_exists() and not _samba_entry_exists(servers)
    assert not (net.state_dir / "secrets" / f"smb-{SMB_ACCOUNT}").exists()


def test_the_last_smb_share_takes_the_credentials_dir_and_the_account_with_it(
    guest: Guest, net: Vmshare, servers: FileServers, tmp_path, open_tmp
):
    assert not smb_account_exists()
    assert guest.run("test", "-e", "/etc/vmshare")[0] != 0
    sources = [make_tree(open_tmp / f"last{i}", OWNER) for i in range(2)]
    for i, src in enumerate(sources):
        net("add", str(src), f"{guest.name}:/mnt/last{i}", "--protocol", "smb", check=True)
    assert smb_account_exists() and _samba_entry_exists(servers)
    net("remove", f"{guest.name}:/mnt/last0", check=True)  # the other share still needs it
    assert smb_account_exists() and _samba_entry_exists(servers)
    assert guest.run("test", "-d", "/etc/vmshare")[0] == 0
    assert guest.read("/mnt/last1/hello.txt") == b"hello from the host\n"
    net("remove", f"{guest.name}:/mnt/last1", check=True)
    assert guest.run("test", "-e", "/etc/vmshare")[0] != 0
    assert not smb_account_exists() and not _samba_entry_exists(servers)
    assert not (net.state_dir / "secrets" / f"smb-{SMB_ACCOUNT}").exists()


def test_an_account_vmshare_did_not_create_stays(
    guest: Guest, net: Vmshare, servers: FileServers, tmp_path, open_tmp
):
    assert not smb_account_exists()
    subprocess.run(["useradd", "--system", "--user-group", SMB_ACCOUNT], check=True)
    try:
        src = make_tree(open_tmp / "theirs", OWNER)
        net("add", str(src), f"{guest.name}:/mnt/theirs", "--protocol", "smb", check=True)
        assert _samba_entry_exists(servers)
        net("remove", f"{guest.name}:/mnt/theirs", check=True)
        assert smb_account_exists()  # the Unix user was there before vmshare
        assert not _samba_entry_exists(servers)  # its Samba entry was vmshare's own
    finally:
        subprocess.run(["userdel", SMB_ACCOUNT], check=True)


@pytest.mark.parametrize("protocol", ["nfs", "smb"])
def test_a_root_owned_folder_is_refused_before_anything_changes(
    guest: Guest, net: Vmshare, servers: FileServers, tmp_path, protocol
):
    src = make_tree(tmp_path / f"root-{protocol}")  # root:root, as `sudo mkdir` makes it
    exports_before = servers.ganesha.exports_path.read_text()
    result = net("add", str(src), f"{guest.name}:/mnt/root-{protocol}", "--protocol", protocol)
    assert result.returncode == 2, result.stderr
    assert "owned by root" in result.stderr and "--owner UID:GID" in result.stderr
    assert servers.ganesha.exports_path.read_text() == exports_before
    assert not (servers.host_config.parent / "samba" / "vmshare.conf").exists()
    assert net.shares() == []


def test_create_with_owner_makes_the_folder_the_owners(guest: Guest, net: Vmshare, tmp_path):
    src = tmp_path / "created" / "here"
    refused = net("add", str(src), f"{guest.name}:/mnt/created", "--protocol", "nfs", "--create")
    assert refused.returncode == 2 and "--create makes it as root" in refused.stderr
    assert not src.exists()
    net(
        "add",
        str(src),
        f"{guest.name}:/mnt/created",
        "--protocol",
        "nfs",
        "--create",
        "--owner",
        "4321:8765",
        check=True,
    )
    assert (src.stat().st_uid, src.stat().st_gid) == (4321, 8765)
    assert guest.sh('echo hi > "$1/new.txt"', "/mnt/created")[0] == 0
    assert (src / "new.txt").stat().st_uid == 4321
    net("remove", f"{guest.name}:/mnt/created", check=True)
    assert (src / "new.txt").read_text() == "hi\n"  # the folder holds the user's file: it stays


def test_no_setuid_or_setgid_file_can_be_planted_on_the_host_through_smb(
    guest: Guest, net: Vmshare, open_tmp
):
    src = make_tree(open_tmp / "suid-smb", OWNER)
    target = "/mnt/suid-smb"
    plan = net.json("add", str(src), f"{guest.name}:{target}", "--protocol", "smb", "--dry-run")
    assert SETUID_WARNING not in plan["data"]["plan"]["choices"][0]["warnings"]
    net("add", str(src), f"{guest.name}:{target}", "--protocol", "smb", check=True)
    assert guest.sh(PLANT, target)[0] == 0
    for name in ("tool", "d", "made"):
        mode = (src / name).stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID), f"{name}: {stat.filemode(mode)}"


def test_the_nfs_plan_warns_that_setuid_bits_land_on_the_host(guest: Guest, net: Vmshare, open_tmp):
    """ganesha 4.3 has no export option against them: the warning states what is measured."""
    src = make_tree(open_tmp / "suid-nfs", OWNER)
    target = "/mnt/suid-nfs"
    plan = net.json("add", str(src), f"{guest.name}:{target}", "--protocol", "nfs", "--dry-run")
    assert SETUID_WARNING in plan["data"]["plan"]["choices"][0]["warnings"]
    net("add", str(src), f"{guest.name}:{target}", "--protocol", "nfs", check=True)
    assert guest.sh(PLANT, target)[0] == 0
    made = (src / "tool").stat()
    assert made.st_mode & stat.S_ISUID and made.st_uid == OWNER[0]


PLANT = """set -e
cp /bin/busybox "$1/tool"
chmod 6755 "$1/tool" || true
mkdir "$1/d"
chmod 2775 "$1/d" || true
touch "$1/made"
chmod u+s,g+s "$1/made" || true
sync
"""
