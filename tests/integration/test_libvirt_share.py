"""vmshare against a real libvirt domain and a real booted guest: what only libvirt has.

Round trips, hostile paths, bad input, rollback, apply/prune and concurrent adds are the share
contract (tests/contract/share.py), run on libvirt by tests/contract/test_share_libvirt.py for
virtiofs, 9p, nfs and smb.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.testbed.fixtures import Guest, Vmshare, make_tree, tree_digest

from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration


def test_readonly_share_is_enforced_by_qemu_even_after_a_remount(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    src = make_tree(tmp_path / "ro")
    before = tree_digest(src)
    target = "/mnt/ro"
    result = vmshare.json("add", str(src), f"{guest.name}:{target}", "--readonly", "--restart")
    assert result["ok"], result
    assert result["data"]["plan"]["choices"][0]["protocol"] == "9p"
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    code, _, err = guest.sh('echo x > "$1/nope.txt"', target)
    assert code != 0 and b"Read-only" in err
    # a guest root that remounts read-write still cannot write: QEMU refuses
    assert guest.run("mount", "-o", "remount,rw", target)[0] == 0
    code, _, _ = guest.sh('echo x > "$1/nope.txt"', target)
    assert code != 0
    assert tree_digest(src) == before
    removed = vmshare.json("remove", f"{guest.name}:{target}", "--restart")
    assert removed["ok"], removed
    assert removed["data"]["done"][-1] == f"restart VM {guest.name} if it runs"
    # the restart that ends the plan took the 9p device out: no note says it is still to come
    assert not [n for n in removed["data"]["notes"] if "next restart" in n], removed["data"]
    assert mount_tag(f"{guest.name}:{target}") not in guest.filesystems(live=True)
    assert tree_digest(src) == before


def test_share_is_mounted_again_after_a_guest_reboot(guest: Guest, vmshare: Vmshare, tmp_path):
    src = make_tree(tmp_path / "persist")
    target = "/mnt/persist"
    vmshare("add", str(src), f"{guest.name}:{target}", check=True)
    guest.reboot()
    assert guest.mounts()[target][1] == "virtiofs"
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert vmshare.json("status")["ok"]
    vmshare("remove", f"{guest.name}:{target}", check=True)


def assert_untouched(
    guest: Guest, vmshare: Vmshare, xml_before: tuple[str, str], fstab: str
) -> None:
    assert (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2)) == xml_before
    assert guest.fstab() == fstab
    assert vmshare.shares() == []


def test_readonly_without_restart_is_refused_and_changes_nothing(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    """Read-only on libvirt means 9p (libvirt 9.0 refuses read-only virtiofs), which needs a
    restart here; the other bad input is the share contract's (tests/contract/share.py)."""
    src = make_tree(tmp_path / "bad")
    xml_before = (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2))
    fstab = guest.fstab()
    proc = vmshare("add", str(src), f"{guest.name}:/mnt/x", "--readonly")
    assert proc.returncode == 2, proc.stderr
    assert "--restart" in proc.stderr
    assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2
    assert_untouched(guest, vmshare, xml_before, fstab)


def test_vm_without_shared_memory_gets_it_with_restart(vmshare: Vmshare, tmp_path):
    from tests.testbed.domain import agent_exec, boot_domain, destroy_domain
    from tests.testbed.fixtures import URI, VM

    name = f"{VM}-noshm"
    dom, _ = boot_domain(URI, name, Path("/var/tmp/vmshare-testbed") / name, shared_memory=False)
    try:
        src = make_tree(tmp_path / "shm")
        blocked = vmshare("add", str(src), f"{name}:/mnt/shm")
        assert blocked.returncode == 2 and "--restart" in blocked.stderr
        plan = vmshare.json("add", str(src), f"{name}:/mnt/shm", "--restart", "--dry-run")
        actions = [s["action"] for s in plan["data"]["plan"]["steps"]]
        assert actions[:3] == ["prepare", "attach_share", "restart"]
        done = vmshare.json("add", str(src), f"{name}:/mnt/shm", "--restart")
        assert done["ok"], done
        assert any("shared memory" in note for note in done["data"]["notes"])
        assert "<access mode='shared'/>" in dom.XMLDesc(2).replace('"', "'")
        code, out, _ = agent_exec(dom, ["cat", "/mnt/shm/hello.txt"])
        assert code == 0 and out == b"hello from the host\n"
        vmshare("remove", f"{name}:/mnt/shm", check=True)
    finally:
        destroy_domain(URI, name)


def test_create_makes_the_host_folder_and_remove_takes_it_away_only_while_empty(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    made = tmp_path / "made" / "here"
    assert vmshare("add", str(made), f"{guest.name}:/mnt/made").returncode == 1  # no --create
    assert not made.exists()
    vmshare("add", str(made), f"{guest.name}:/mnt/made", "--create", check=True)
    assert made.is_dir()
    vmshare("remove", f"{guest.name}:/mnt/made", check=True)
    assert not made.exists()
    vmshare("add", str(made), f"{guest.name}:/mnt/made", "--create", check=True)
    assert guest.sh('echo keep > "$1/keep.txt"', "/mnt/made")[0] == 0
    removed = vmshare("remove", f"{guest.name}:/mnt/made", check=True)
    assert (made / "keep.txt").read_text() == "keep\n"
    assert "not empty" in removed.stdout
