"""`vmshare prune` on the real guest: a virtiofs and an NFS (nfs-ganesha) share whose state
record is lost are found and taken away (device, export, guest mount, fstab line); the user's
own fstab line and export next to vmshare's stay byte for byte; a second prune finds nothing."""

from __future__ import annotations

import pytest
from tests.testbed.fixtures import OWNER, FileServers, Guest, Vmshare, exported, make_tree

from vmshare.formats import ownedblock
from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration

USER_FSTAB = "tmpfs /mnt/users-own tmpfs noauto,size=1m 0 0"


def outside_block(text: str) -> list[str]:
    """The lines of a file that are not vmshare's block: the user's, byte for byte."""
    lines, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == ownedblock.BEGIN:
            inside = True
        elif not inside:
            lines.append(line)
        elif line.rstrip("\n") == ownedblock.END:
            inside = False
    return lines


def test_prune_takes_away_what_a_lost_state_left_and_nothing_else(
    guest: Guest, vmshare: Vmshare, servers: FileServers, open_tmp
):
    vmshare.env["VMSHARE_HOST_CONFIG"] = str(servers.host_config)
    fstab_before = guest.fstab()
    fs_key, nfs_key = f"{guest.name}:/mnt/pruned-fs", f"{guest.name}:/mnt/pruned-nfs"
    fs_tag, nfs_tag = mount_tag(fs_key), mount_tag(nfs_key)
    fs_src = make_tree(open_tmp / "fs")
    nfs_src = make_tree(open_tmp / "nfs", OWNER)
    main_config = servers.ganesha.config_path  # vmshare's own file is included from it
    config_before = main_config.read_text()
    try:
        vmshare("add", str(fs_src), fs_key, "--protocol", "virtiofs", check=True)
        vmshare("add", str(nfs_src), nfs_key, "--protocol", "nfs", check=True)
        # the user's own fstab line and export, next to vmshare's
        code, _, err = guest.sh('printf "%s\\n" "$1" >> /etc/fstab', USER_FSTAB)
        assert code == 0, err
        mine = open_tmp / "mine"
        mine.mkdir()
        main_config.write_text(
            config_before + f'EXPORT {{ Export_Id = 77; Path = "{mine}"; Pseudo = "/users-own"; '
            "Access_Type = None; FSAL { Name = VFS; } }\n"
        )
        users_fstab = outside_block(guest.fstab())
        users_config = outside_block(main_config.read_text())
        assert fs_tag in guest.filesystems() and nfs_tag in exported(servers, "nfs")

        (vmshare.state_dir / "state.json").unlink()  # a lost state dir, or a crash before it

        dry = vmshare.json("prune", "--dry-run", "--vm", guest.name)
        assert dry["ok"] and dry["data"]["looked"] == [guest.name], dry
        assert set(dry["data"]["plan"]["removes"]) == {fs_key, nfs_key}
        assert fs_tag in guest.filesystems()  # a dry run changes nothing

        pruned = vmshare("prune", "--yes", "--vm", guest.name)
        assert pruned.returncode == 0, pruned.stderr
        assert "Pruned:" in pruned.stdout
        assert fs_tag not in guest.filesystems() and fs_tag not in guest.filesystems(live=False)
        assert nfs_tag not in exported(servers, "nfs")
        mounts = guest.mounts()
        assert "/mnt/pruned-fs" not in mounts and "/mnt/pruned-nfs" not in mounts
        assert not {fs_tag, nfs_tag} & set(ownedblock.entries(guest.fstab()))
        assert outside_block(guest.fstab()) == users_fstab
        assert outside_block(main_config.read_text()) == users_config

        again = vmshare("prune", "--vm", guest.name)
        assert again.returncode == 0, again.stderr
        assert "Nothing to prune." in again.stdout
    finally:
        guest.sh('printf "%s" "$1" > /etc/fstab', fstab_before)
        main_config.write_text(config_before)
