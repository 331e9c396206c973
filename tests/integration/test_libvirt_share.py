"""vmshare against a real libvirt domain and a real booted guest, checked from both sides."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.testbed.fixtures import Guest, Vmshare, make_tree, tree_digest

from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration


def test_share_round_trips_both_ways_then_remove_leaves_nothing(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    src = make_tree(tmp_path / "src")
    target = "/mnt/rt"
    tag = mount_tag(f"{guest.name}:{target}")
    fstab_before = guest.fstab()

    result = vmshare.json("add", str(src), f"{guest.name}:{target}")
    assert result["ok"], result
    assert result["data"]["plan"]["choices"][0]["protocol"] == "virtiofs"

    # host -> guest
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert guest.read(f"{target}/sub/deeper/data.bin") == bytes(range(256)) * 64
    # guest -> host
    code, _, err = guest.sh('printf "from the guest" > "$1/guest.txt"', target)
    assert code == 0, err
    assert (src / "guest.txt").read_text() == "from the guest"
    # every layer is in place
    assert guest.mounts()[target][:2] == (tag, "virtiofs")
    assert tag in guest.filesystems(live=True) and tag in guest.filesystems(live=False)
    assert f"{tag} {target} virtiofs rw,nofail 0 0" in guest.fstab()
    status = vmshare.json("status")
    assert status["ok"] and status["data"][0]["checks"]["probe"] == "ok"

    # planning the same share again finds nothing to do, by shorthand and by spec file
    again = vmshare.json("add", str(src), f"{guest.name}:{target}", "--dry-run")
    assert again["data"]["plan"]["steps"] == []
    spec = tmp_path / "vmshare.toml"
    spec.write_text(f'[[share]]\nsource = "{src}"\nvm = "{guest.name}"\ntarget = "{target}"\n')
    planned = vmshare("plan", "-f", str(spec), check=True)
    assert "Nothing to do" in planned.stdout

    before_remove = tree_digest(src)
    removed = vmshare("remove", f"{guest.name}:{target}", check=True)
    assert "fstab" in removed.stderr
    assert target not in guest.mounts()
    assert tag not in guest.filesystems(live=True)
    assert tag not in guest.filesystems(live=False)
    assert guest.fstab() == fstab_before
    assert guest.run("test", "-e", target)[0] != 0  # the mount point vmshare made is gone
    assert tree_digest(src) == before_remove
    assert vmshare.shares() == []


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


HOSTILE_NAMES = [
    'it\'s "quoted"',
    "$(touch /tmp/pwned);`id`",
    "semi;colon & amp",
    "‘curly’ ‛quotes‚",
    "sp  ace",
    "[bold]markup[/]",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_host_and_guest_paths_share_correctly(
    guest: Guest, vmshare: Vmshare, tmp_path, name
):
    src = make_tree(tmp_path / name)
    target = f"/mnt/h {name}"
    fstab_before = guest.fstab()
    proc = vmshare("add", str(src), f"{guest.name}:{target}")
    assert proc.returncode == 0, proc.stderr
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert guest.run("test", "-e", "/tmp/pwned")[0] != 0
    assert not Path("/tmp/pwned").exists()
    from vmshare.formats.fstab import parse_table

    entries = [e for e in parse_table(guest.fstab()) if e.target == target]
    assert len(entries) == 1
    vmshare("remove", f"{guest.name}:{target}", check=True)
    assert guest.fstab() == fstab_before
    assert target not in guest.mounts()


def assert_untouched(
    guest: Guest, vmshare: Vmshare, xml_before: tuple[str, str], fstab: str
) -> None:
    assert (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2)) == xml_before
    assert guest.fstab() == fstab
    assert vmshare.shares() == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["add", "{src}", "no-such-vm:/mnt/x"], 1, "VM 'no-such-vm' not found"),
        (["add", "{src}/missing", "{vm}:/mnt/x"], 1, "does not exist"),
        (["add", "{src}", "{vm}:mnt/x"], 2, "must be absolute"),
        (["add", "{src}/a\nb", "{vm}:/mnt/x"], 2, "control character"),
        (["add", "{src}", "{vm}:/mnt/x\n/etc"], 2, "control character"),
        (["add", "{src}", "{vm}:/mnt/x", "-o", "rw 0 0\nevil /etc"], 2, "mount option"),
        (["add", "{src}", "{vm}:/mnt/x", "--readonly"], 2, "--restart"),
    ],
)
def test_bad_input_changes_nothing(guest: Guest, vmshare: Vmshare, tmp_path, args, code, message):
    src = make_tree(tmp_path / "bad")
    xml_before = (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2))
    fstab = guest.fstab()
    argv = [a.format(src=src, vm=guest.name) for a in args]
    proc = vmshare(*argv)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 2
    assert_untouched(guest, vmshare, xml_before, fstab)


def test_failure_in_the_guest_rolls_back_the_device(guest: Guest, vmshare: Vmshare, tmp_path):
    src = make_tree(tmp_path / "rb")
    assert guest.sh(": > /tmp/blocker")[0] == 0  # a file where a folder must be created
    xml_before = (guest.dom.XMLDesc(0), guest.dom.XMLDesc(2))
    fstab = guest.fstab()
    proc = vmshare("add", str(src), f"{guest.name}:/tmp/blocker/mnt")
    assert proc.returncode == 3, proc.stderr
    assert "undid 2 step(s)" in proc.stderr and "everything is as before" in proc.stderr
    assert "↶ detach" in proc.stderr and "(rolling back)" in proc.stderr
    assert_untouched(guest, vmshare, xml_before, fstab)


def test_apply_is_idempotent_and_prune_removes_what_the_file_dropped(
    guest: Guest, vmshare: Vmshare, tmp_path
):
    a, b = make_tree(tmp_path / "a"), make_tree(tmp_path / "b")
    spec = tmp_path / "vmshare.toml"
    both = (
        f'[vm.{guest.name}]\nbackend = "libvirt"\n\n'
        f'[[share]]\nsource = "a"\nvm = "{guest.name}"\ntarget = "/mnt/a"\n\n'
        f'[[share]]\nsource = "b"\nvm = "{guest.name}"\ntarget = "/mnt/b"\n'
    )
    spec.write_text(both)
    vmshare("apply", "-f", str(spec), check=True)
    assert {"/mnt/a", "/mnt/b"} <= set(guest.mounts())
    assert vmshare.json("plan", "-f", str(spec))["data"]["plan"]["steps"] == []
    assert "Nothing to do" in vmshare("apply", "-f", str(spec), check=True).stdout
    spec.write_text(both.split('\n\n[[share]]\nsource = "b"')[0] + "\n")
    vmshare("apply", "-f", str(spec), "--prune", "--yes", check=True)
    assert "/mnt/b" not in guest.mounts() and "/mnt/a" in guest.mounts()
    assert [s["target"] for s in vmshare.shares()] == ["/mnt/a"]
    assert guest.read("/mnt/a/hello.txt") == (a / "hello.txt").read_bytes()
    assert (b / "hello.txt").read_text() == "hello from the host\n"


def test_two_adds_at_the_same_moment_both_land(guest: Guest, vmshare: Vmshare, tmp_path):
    sources = [make_tree(tmp_path / f"c{i}") for i in range(2)]
    results = vmshare.at_once(
        *(["add", str(src), f"{guest.name}:/mnt/c{i}"] for i, src in enumerate(sources))
    )
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    mounts = guest.mounts()
    assert "/mnt/c0" in mounts and "/mnt/c1" in mounts
    assert len(vmshare.shares()) == 2


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
        assert actions[:3] == ["add_shared_memory", "attach_filesystem", "restart"]
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
