"""Changing a share is a transaction, on the real guest: refused unless asked, restored on
failure, one winner when two runs race; guest paths in any spelling; parent folders."""

from __future__ import annotations

import pytest
from tests.testbed.fixtures import OWNER, Guest, Vmshare, make_tree, tree_digest

from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration


def layers(guest: Guest, target: str) -> tuple[object, ...]:
    """Every layer of one share as the guest and libvirt show it."""
    tag = mount_tag(f"{guest.name}:{target}")
    return (
        guest.mounts().get(target),
        guest.filesystems(live=True).get(tag),
        guest.filesystems(live=False).get(tag),
        [line for line in guest.fstab().splitlines() if tag in line],
    )


def test_changed_settings_are_refused_without_replace_and_restored_when_the_new_share_fails(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    src = make_tree(tmp_path / "old")
    target = "/mnt/tx"
    vmshare("add", str(src), f"{guest.name}:{target}", check=True)
    before = layers(guest, target)
    shares = vmshare.shares()

    refused = vmshare("add", str(src), f"{guest.name}:{target}", "-o", "noatime")
    assert refused.returncode == 2 and "--replace" in refused.stderr
    assert layers(guest, target) == before and vmshare.shares() == shares

    # a mount option the kernel rejects: the new share fails, the old one comes back whole
    failed = vmshare(
        "add", str(src), f"{guest.name}:{target}", "-o", "nosuchoption", "--replace", "--yes"
    )
    assert failed.returncode == 3, failed.stderr
    assert "restored" in failed.stderr and "as before" in failed.stderr
    assert layers(guest, target) == before
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert [s["requested"] for s in vmshare.shares()] == [s["requested"] for s in shares]
    assert vmshare.json("status")["ok"]

    replaced = vmshare(
        "add", str(src), f"{guest.name}:{target}", "-o", "noatime", "--replace", "--yes"
    )
    assert replaced.returncode == 0, replaced.stderr
    assert "noatime" in guest.mounts()[target][2]
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    vmshare("remove", f"{guest.name}:{target}", check=True)
    assert layers(guest, target) == (None, None, None, [])


def test_two_adds_racing_for_one_target_have_one_winner(guest: Guest, vmshare: Vmshare, tmp_path):
    sources = [make_tree(tmp_path / f"race{i}") for i in range(2)]
    target = "/mnt/race"
    results = vmshare.at_once(*(["add", str(src), f"{guest.name}:{target}"] for src in sources))
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 2], [r.stderr for r in results]
    loser = next(r for r in results if r.returncode == 2)
    assert "already shared" in loser.stderr
    winner = sources[[r.returncode for r in results].index(0)]
    assert [s["source"] for s in vmshare.shares()] == [str(winner)]
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert vmshare.json("status")["ok"]


def test_a_guest_path_in_any_spelling_is_one_share(guest: Guest, vmshare: Vmshare, tmp_path):
    src = make_tree(tmp_path / "slashes")
    vmshare("add", str(src), f"{guest.name}://mnt/ds/", check=True)
    assert [s["target"] for s in vmshare.shares()] == ["/mnt/ds"]
    again = vmshare.json("add", str(src), f"{guest.name}:/mnt//ds", "--dry-run")
    assert again["data"]["plan"]["steps"] == []
    vmshare("remove", f"{guest.name}://mnt/ds/.", check=True)
    assert "/mnt/ds" not in guest.mounts()
    assert vmshare.shares() == []


def test_nested_target_and_same_folder_twice_change_nothing(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    src, other = make_tree(tmp_path / "outer"), make_tree(tmp_path / "other")
    vmshare("add", str(src), f"{guest.name}:/mnt/outer", check=True)
    xml = (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2))
    fstab = guest.fstab()
    nested = vmshare("add", str(other), f"{guest.name}:/mnt/outer/inner")
    assert nested.returncode == 2 and "nest" in nested.stderr
    twice = vmshare("add", str(src), f"{guest.name}:/mnt/again")
    assert twice.returncode == 2 and "already shared into VM" in twice.stderr
    assert (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2)) == xml and guest.fstab() == fstab
    assert len(vmshare.shares()) == 1


def test_remove_deletes_the_parent_folders_it_created_and_only_those(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    src = make_tree(tmp_path / "deep")
    before = tree_digest(src)
    assert guest.run("test", "-e", "/srv/vmshare-p1")[0] != 0
    assert guest.run("mkdir", "-p", "/srv")[0] == 0
    vmshare("add", str(src), f"{guest.name}:/srv/vmshare-p1/p2/x", check=True)
    vmshare("remove", f"{guest.name}:/srv/vmshare-p1/p2/x", check=True)
    assert guest.run("test", "-e", "/srv/vmshare-p1")[0] != 0
    assert guest.run("test", "-d", "/srv")[0] == 0  # it was there before
    assert tree_digest(src) == before


def test_a_share_whose_record_is_lost_is_reported_and_removed(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    src = make_tree(tmp_path / "lost")
    target = "/mnt/lost"
    vmshare("add", str(src), f"{guest.name}:{target}", check=True)
    other = Vmshare(tmp_path / "another-state-dir")  # as if the state file were lost
    status = other.json("status", guest.name)
    assert not status["ok"]
    assert [row["key"] for row in status["data"]] == [f"{guest.name}:{target}"]
    assert "no vmshare record explains" in status["data"][0]["problems"][0]
    removed = other("remove", f"{guest.name}:{target}")
    assert removed.returncode == 0, removed.stderr
    assert layers(guest, target) == (None, None, None, [])
    # nothing left to report: no record and no unrecorded object (status exits 1: no share)
    after = other.json("status", guest.name)
    assert after["data"]["error"]["message"] == f"no share to check in VM {guest.name!r}"
    # the first state dir's record now finds nothing to undo, and goes
    vmshare("remove", f"{guest.name}:{target}", check=True)
    assert vmshare.shares() == []


@pytest.mark.parametrize("name", ["co,mma", "back\\slash"])
def test_a_path_virtiofs_cannot_carry_is_refused_and_nfs_carries_it(
    guest: Guest, vmshare: Vmshare, servers, open_tmp, name
):
    src = make_tree(open_tmp / name, OWNER)
    target = "/mnt/odd"
    xml = (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2))
    fstab = guest.fstab()
    refused = vmshare("add", str(src), f"{guest.name}:{target}")
    assert refused.returncode == 2 and "virtiofs cannot carry" in refused.stderr
    assert "--protocol nfs" in refused.stderr
    assert (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2)) == xml and guest.fstab() == fstab
    vmshare.env["VMSHARE_HOST_CONFIG"] = str(servers.host_config)
    vmshare("add", str(src), f"{guest.name}:{target}", "--protocol", "nfs", check=True)
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    vmshare("remove", f"{guest.name}:{target}", check=True)
    assert target not in guest.mounts()
