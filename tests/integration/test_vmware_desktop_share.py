"""Workstation/Fusion end to end through the vmrun stand-in and the session's test guest: what
only this backend has. The plan of a running VM names the exact vmrun commands; a share on the
running VM is a folder in its .vmx (VMware writes it) that the guest's vmhgfs-fuse mounts and
that comes back after a guest reboot; read-only folders are vmrun's readonly state; a VM that is
off gets its folder written into the .vmx, and `--restart` starts it with the folder there."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from tests.testbed.fixtures import Vmshare, VmwareBed, make_tree, tree_digest

from vmshare.backends.vmware_desktop import vmxfacts
from vmshare.formats import vmx as vmxfmt
from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration


@pytest.fixture
def bed(vmware: VmwareBed, vmshare: Vmshare) -> VmwareBed:
    vmshare.env.update(vmware.env)
    vmware.reset_vmx()
    return vmware


def folder(bed: VmwareBed, tag: str) -> vmxfmt.SharedFolder | None:
    parsed = vmxfmt.parse(bed.vmx.read_bytes())
    return next((f for f in vmxfmt.shared_folders(parsed).values() if f.guest_name == tag), None)


def vmrun(bed: VmwareBed, *args: str) -> str:
    proc = subprocess.run(
        ["vmrun", "-T", "ws", *args], capture_output=True, text=True, check=True, env=bed.env
    )
    assert "Error" not in proc.stdout, proc.stdout
    return proc.stdout


def test_the_plan_of_a_running_vm_names_the_exact_vmrun_commands(bed, vmshare, open_tmp):
    src = make_tree(open_tmp / "src")
    tag = mount_tag(f"{bed.vm}:/mnt/src")
    proc = vmshare("add", str(src), f"{bed.vm}:/mnt/src", "--dry-run", env={"COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    vmx = shlex.quote(str(bed.vmx))  # "Virtual Machines": the plan quotes it as a shell would
    assert f"vmrun -T ws addSharedFolder {vmx} {tag} {src}" in proc.stdout
    assert f"vmrun -T ws setSharedFolderState {vmx} {tag} {src} writable" in proc.stdout
    assert f"fuse.vmhgfs-fuse rw,allow_other,subtype=vmhgfs-fuse,fsname=.host:/{tag}" in (
        proc.stdout
    )
    assert bed.env["VMSHARE_IT_VMRUN_PASSWORD"] not in proc.stdout + proc.stderr
    assert folder(bed, tag) is None


def test_a_share_survives_a_guest_reboot_and_leaves_the_vmx_as_it_was(bed, vmshare, open_tmp):
    guest = bed.guest
    src = make_tree(open_tmp / "src")
    target, tag = "/mnt/hgfs-reboot", mount_tag(f"{bed.vm}:/mnt/hgfs-reboot")
    original = bed.vmx.read_bytes()
    vmshare("add", str(src), f"{bed.vm}:{target}", check=True)
    found = folder(bed, tag)
    assert found is not None and found.host_path == str(src) and found.write_access
    assert guest.mounts()[target][0] == f".host:/{tag}"
    guest.reboot()
    assert guest.mounts()[target][0] == f".host:/{tag}"  # from the fstab line, by vmhgfs-fuse
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert guest.sh('echo after > "$1/after.txt"', target)[0] == 0
    assert (src / "after.txt").read_text() == "after\n"
    assert vmshare.json("status")["data"][0]["checks"]["probe"] == "ok"
    digest = tree_digest(src)
    vmshare("remove", f"{bed.vm}:{target}", check=True)
    assert folder(bed, tag) is None and target not in guest.mounts()
    kept = [ln for ln in original.splitlines() if not ln.startswith(b"sharedFolder.maxNum")]
    now = [
        ln for ln in bed.vmx.read_bytes().splitlines() if not ln.startswith(b"sharedFolder.maxNum")
    ]
    assert now == kept
    assert tree_digest(src) == digest


def test_a_readonly_share_is_vmruns_readonly_folder(bed, vmshare, open_tmp):
    src = make_tree(open_tmp / "ro")
    tag = mount_tag(f"{bed.vm}:/mnt/ro")
    vmshare("add", str(src), f"{bed.vm}:/mnt/ro", "--readonly", check=True)
    found = folder(bed, tag)
    assert found is not None and found.read_access and not found.write_access
    assert "ro" in bed.guest.mounts()["/mnt/ro"][2].split(",")
    assert bed.guest.sh('echo x > "$1/x"', "/mnt/ro")[0] != 0
    vmshare("remove", f"{bed.vm}:/mnt/ro", check=True)
    assert folder(bed, tag) is None


def test_a_vm_that_is_off_gets_the_folder_in_its_vmx_and_starts_with_it(bed, vmshare, open_tmp):
    guest = bed.guest
    src = make_tree(open_tmp / "off")
    target, tag = "/mnt/off", mount_tag(f"{bed.vm}:/mnt/off")
    try:
        vmrun(bed, "stop", str(bed.vmx), "soft")
        assert not vmxfmt.lock_folder(bed.vmx).exists()
        vmxfmt.edit_vmx(bed.vmx, lambda v: v.set(vmxfacts.HGFS_OFF, "TRUE"))
        blocked = vmshare("add", str(src), f"{bed.vm}:{target}")
        assert blocked.returncode == 2 and "is not running" in blocked.stderr
        assert folder(bed, tag) is None
        proc = vmshare("add", str(src), f"{bed.vm}:{target}", "--restart", check=True)
        assert "start VM devvm" in proc.stderr
        found = folder(bed, tag)
        assert found is not None and found.host_path == str(src)
        parsed = vmxfacts.read(bed.vmx)
        assert parsed is not None and vmxfacts.hgfs_enabled(parsed)
        assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
        vmshare("remove", f"{bed.vm}:{target}", check=True)
        assert folder(bed, tag) is None and target not in guest.mounts()
        parsed = vmxfacts.read(bed.vmx)  # off, as the .vmx had them before the add
        assert parsed is not None and not vmxfacts.hgfs_enabled(parsed)
    finally:
        if "Total running VMs: 0" in vmrun(bed, "list"):
            vmrun(bed, "start", str(bed.vmx), "nogui")


def test_shared_folders_that_are_off_are_turned_on_first(bed, vmshare, open_tmp):
    src = make_tree(open_tmp / "on")
    tag = mount_tag(f"{bed.vm}:/mnt/on")
    vmrun(bed, "disableSharedFolders", str(bed.vmx))
    parsed = vmxfacts.read(bed.vmx)
    assert parsed is not None and not vmxfacts.hgfs_enabled(parsed)
    plan = vmshare("add", str(src), f"{bed.vm}:/mnt/on", "--dry-run", env={"COLUMNS": "250"})
    assert "turn on shared folders in running VM devvm" in plan.stdout
    assert f"vmrun -T ws enableSharedFolders {shlex.quote(str(bed.vmx))}" in plan.stdout
    vmshare("add", str(src), f"{bed.vm}:/mnt/on", check=True)
    parsed = vmxfacts.read(bed.vmx)
    assert parsed is not None and vmxfacts.hgfs_enabled(parsed)
    assert bed.guest.read("/mnt/on/hello.txt") == b"hello from the host\n"
    plan = vmshare("remove", f"{bed.vm}:/mnt/on", "--dry-run", env={"COLUMNS": "250"})
    assert f"vmrun -T ws disableSharedFolders {shlex.quote(str(bed.vmx))}" in plan.stdout
    vmshare("remove", f"{bed.vm}:/mnt/on", check=True)
    assert folder(bed, tag) is None
    # vmshare turned them on: the removal turned them off again, through vmrun
    parsed = vmxfacts.read(bed.vmx)
    assert parsed is not None and not vmxfacts.hgfs_enabled(parsed)


def test_removing_a_share_while_the_vm_is_off_is_refused_with_nothing_changed(
    bed, vmshare, open_tmp
):
    src = make_tree(open_tmp / "rm-off")
    target, tag = "/mnt/rm-off", mount_tag(f"{bed.vm}:/mnt/rm-off")
    vmshare("add", str(src), f"{bed.vm}:{target}", check=True)
    try:
        vmrun(bed, "stop", str(bed.vmx), "soft")
        vmx = bed.vmx.read_bytes()
        refused = vmshare("remove", f"{bed.vm}:{target}", env={"COLUMNS": "250"})
        assert refused.returncode == 2, refused.stderr
        error, hint = refused.stderr.strip().splitlines()
        assert error == (
            f"error: VM {bed.vm!r} is not running: removing its share unmounts it inside the guest"
        )
        assert "--restart" in hint and "nothing was changed" in hint
        assert bed.vmx.read_bytes() == vmx
        assert [s["key"] for s in vmshare.json("list")["data"]] == [f"{bed.vm}:{target}"]
        # --restart starts the VM first, then the removal runs as on a running VM
        proc = vmshare("remove", f"{bed.vm}:{target}", "--restart", check=True)
        assert f"start VM {bed.vm}" in proc.stderr
        assert folder(bed, tag) is None and target not in bed.guest.mounts()
        assert vmshare.json("list")["data"] == []
    finally:
        if "Total running VMs: 0" in vmrun(bed, "list"):
            vmrun(bed, "start", str(bed.vmx), "nogui")


FUSE_CLIENT, KERNEL_CLIENT = "/usr/bin/vmhgfs-fuse", "/sbin/mount.vmhgfs"


def hide(bed: VmwareBed, *paths: str) -> None:
    """Take HGFS clients out of the guest, as a guest without them is (the root file system is
    the initramfs: a reboot brings them back, and so does ``unhide``)."""
    for path in paths:
        assert bed.guest.sh('mv "$1" "$1.hidden"', path)[0] == 0


def unhide(bed: VmwareBed, *paths: str) -> None:
    for path in paths:
        bed.guest.sh('[ ! -e "$1.hidden" ] || mv "$1.hidden" "$1"', path)


def test_a_guest_without_vmhgfs_fuse_mounts_with_the_kernel_client(bed, vmshare, open_tmp):
    guest = bed.guest
    src = make_tree(open_tmp / "kernel")
    target, tag = "/mnt/hgfs-kernel", mount_tag(f"{bed.vm}:/mnt/hgfs-kernel")
    hide(bed, FUSE_CLIENT)
    try:
        plan = vmshare("add", str(src), f"{bed.vm}:{target}", "--dry-run", env={"COLUMNS": "250"})
        assert plan.returncode == 0, plan.stderr
        assert f"guest: mount.vmhgfs .host:/{tag} {target} -o rw,uid=" in plan.stdout
        assert f".host:/{tag} {target} vmhgfs rw,uid=" in plan.stdout  # the fstab line
        assert "the guest has no vmhgfs-fuse (open-vm-tools before 10)" in plan.stdout
        vmshare("add", str(src), f"{bed.vm}:{target}", check=True)
        assert guest.mounts()[target][0] == f".host:/{tag}"
        assert f".host:/{tag} {target} vmhgfs ".encode() in guest.read("/etc/fstab")
        guest.reboot()  # busybox mount -a runs mount.vmhgfs for the fstab line
        assert guest.mounts()[target][0] == f".host:/{tag}"
        assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
        assert guest.sh('echo kernel > "$1/k.txt"', target)[0] == 0
        assert (src / "k.txt").read_text() == "kernel\n"
        vmshare("remove", f"{bed.vm}:{target}", check=True)
        assert folder(bed, tag) is None and target not in guest.mounts()
        assert tag.encode() not in guest.read("/etc/fstab")
    finally:
        unhide(bed, FUSE_CLIENT)


def test_a_guest_without_any_hgfs_client_is_refused_before_any_change(bed, vmshare, open_tmp):
    src = make_tree(open_tmp / "none")
    tag = mount_tag(f"{bed.vm}:/mnt/none")
    vmx = bed.vmx.read_bytes()
    hide(bed, FUSE_CLIENT, KERNEL_CLIENT)
    try:
        proc = vmshare("add", str(src), f"{bed.vm}:/mnt/none", env={"COLUMNS": "250"})
        assert proc.returncode == 2, proc.stderr
        error, hint = proc.stderr.strip().splitlines()
        assert error.startswith(f"error: VM {bed.vm!r} has no HGFS client")
        assert "install open-vm-tools in the guest (it brings vmhgfs-fuse)" in hint
        assert bed.vmx.read_bytes() == vmx and folder(bed, tag) is None
        assert vmshare.shares() == [] and "/mnt/none" not in bed.guest.mounts()
    finally:
        unhide(bed, FUSE_CLIENT, KERNEL_CLIENT)
