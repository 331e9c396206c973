"""The vmware-desktop backend on VMs that are off: its folders go into the .vmx (Workstation,
Fusion and Shift_JIS fixtures), a locked VM is refused with the file unchanged, hostile host
paths cannot add a key, vmrun's errors are caught even with exit status 0, the vmrun stand-in
takes only vmrun's syntax, and the plan (`--dry-run`) shows the exact .vmx keys, guest mount and
fstab lines. The stand-in's VM here maps to no libvirt domain: nothing runs, nothing boots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.testbed.vmrun import StandInVm, install

from vmshare.backends.vmware_desktop import vmxfacts
from vmshare.backends.vmware_desktop.backend import VmwareDesktopBackend
from vmshare.backends.vmware_desktop.settings import VmwareDesktopVm
from vmshare.errors import GuestError, HypervisorError, NotFoundError, UsageError, VmshareError
from vmshare.facts import GuestFacts
from vmshare.formats import vmx as vmxfmt
from vmshare.guest.linux import mount_argv
from vmshare.protocols import device_protocol, mount_tag
from vmshare.protocols.hgfs import guest_client as hgfs_guest_client
from vmshare.spec import GuestAccess

DATA = Path(__file__).parent / "data" / "vmx"
TEMPLATE = Path(__file__).parents[1] / "testbed" / "vmrun" / "devvm.vmx"
PASSWORD = "s3cret-guest-pw"
TAG = mount_tag("devvm:/mnt/src")


@pytest.fixture
def bed(tmp_path, monkeypatch):
    """A VM that is off: its .vmx (a copy of ``name``) and the vmrun stand-in on PATH."""

    def make(name: str | None = None) -> VmwareDesktopBackend:
        vmx = tmp_path / "vm" / "devvm.vmx"
        vmx.parent.mkdir(exist_ok=True)
        vmx.write_bytes((DATA / name if name else TEMPLATE).read_bytes())
        install(tmp_path / "bin", [StandInVm(vmx, "vmshare-no-such-domain")], ("root", PASSWORD))
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("VMSHARE_UT_GUEST_PASSWORD", PASSWORD)
        settings = VmwareDesktopVm(
            name="devvm",
            vmx=str(vmx),
            product="ws",
            guest=GuestAccess(login_password={"env": "VMSHARE_UT_GUEST_PASSWORD"}),
        )
        return VmwareDesktopBackend(settings)

    return make


def lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


@pytest.mark.parametrize("name", ["workstation-win.vmx", "fusion-mac.vmx", "workstation-sjis.vmx"])
def test_a_stopped_vm_gets_its_folder_in_the_vmx_and_loses_exactly_it(bed, tmp_path, name):
    backend = bed(name)
    original = backend.path.read_bytes()
    before = backend.inspect("devvm")
    assert before.exists and not before.running and before.persistent_devices == {}
    assert before.capabilities.device("hgfs") is not None
    for _ in range(2):  # idempotent
        backend.attach_share(
            vm="devvm", tag=TAG, source=str(tmp_path), protocol="hgfs", readonly=True,
            scopes=["persistent"],
        )  # fmt: skip
    data = backend.path.read_bytes()
    parsed = vmxfmt.parse(data)
    folder = next(f for f in vmxfmt.shared_folders(parsed).values() if f.guest_name == TAG)
    assert (folder.host_path, folder.present, folder.enabled) == (str(tmp_path), True, True)
    assert folder.read_access and not folder.write_access
    assert parsed.get("isolation.tools.hgfs.disable") in (None, "FALSE")
    new = [ln for ln in lines(data) if ln not in lines(original)]
    assert all(ln.lower().startswith((b"sharedfolder", b"isolation.tools.hgfs")) for ln in new)
    kept = [ln for ln in lines(original) if ln in lines(data)]
    changed = [ln for ln in lines(original) if ln not in lines(data)]
    assert all(
        ln.lower().startswith((b"sharedfolder.maxnum", b"isolation.tools.hgfs")) for ln in changed
    )
    assert len(kept) + len(changed) == len(lines(original))
    after = backend.inspect("devvm").persistent_devices
    assert set(after) == {TAG} and after[TAG].readonly and after[TAG].protocol == "hgfs"
    # the user's own folders are not vmshare's: never listed, never touched
    users = {f.guest_name for f in vmxfmt.shared_folders(vmxfmt.parse(original)).values()}
    assert users.isdisjoint(after)
    for _ in range(2):
        backend.detach_share(vm="devvm", tag=TAG, scopes=["running", "persistent"])
    gone = backend.path.read_bytes()
    assert TAG.encode() not in gone
    assert [ln for ln in lines(gone) if ln not in lines(original)] == [
        ln for ln in new if not ln.lower().startswith(b"sharedfolder") or b"maxnum" in ln.lower()
    ]
    assert (backend.path.parent / "devvm.vmx.vmshare-bak").exists()  # the version before


@pytest.mark.parametrize("name", ["workstation-win.vmx", "fusion-mac.vmx", "workstation-sjis.vmx"])
def test_removal_puts_back_what_the_attach_turned_on_in_the_vmx(bed, tmp_path, name):
    """Shared folders turned on and sharedFolder.maxNum raised for vmshare's folder go back to
    what they were, from what the plan recorded: the .vmx ends byte for byte as it began."""
    backend = bed(name)
    original = backend.path.read_bytes()
    was_on = vmxfacts.hgfs_enabled(vmxfmt.parse(original))
    hgfs = backend.inspect("devvm").capabilities.device("hgfs")
    assert hgfs is not None
    assert [(m.name, m.undo) for m in hgfs.missing] == (
        [] if was_on else [("shared-folders", "shared-folders-off")]
    )
    for missing in hgfs.missing:
        backend.prepare(vm="devvm", prerequisite=missing.name)
    backend.attach_share(
        vm="devvm", tag=TAG, source=str(tmp_path), protocol="hgfs", readonly=False,
        scopes=["persistent"],
    )  # fmt: skip
    changed = vmxfmt.parse(backend.path.read_bytes())
    assert vmxfacts.hgfs_enabled(changed)
    assert set(vmxfacts.devices(changed)) == {TAG}
    backend.detach_share(vm="devvm", tag=TAG, scopes=["running", "persistent"], **hgfs.detach_args)
    for missing in hgfs.missing:
        assert missing.undo is not None
        backend.prepare(vm="devvm", prerequisite=missing.undo)
    assert backend.path.read_bytes() == original


def test_shared_folders_stay_on_while_another_vmshare_folder_uses_them(bed, tmp_path):
    backend = bed("workstation-win.vmx")  # shared folders off
    hgfs = backend.inspect("devvm").capabilities.device("hgfs")
    assert hgfs is not None and hgfs.missing
    other = mount_tag("devvm:/mnt/other")
    for tag in (TAG, other):
        backend.attach_share(
            vm="devvm", tag=tag, source=str(tmp_path), protocol="hgfs", readonly=False,
            scopes=["persistent"],
        )  # fmt: skip
    backend.detach_share(vm="devvm", tag=TAG, scopes=["persistent"], **hgfs.detach_args)
    note = backend.prepare(vm="devvm", prerequisite="shared-folders-off")
    assert note is not None and "other vmshare folders" in note
    parsed = vmxfmt.parse(backend.path.read_bytes())
    assert vmxfacts.hgfs_enabled(parsed) and set(vmxfacts.devices(parsed)) == {other}


HOSTILE_PATHS = [
    '/srv/a"b',
    '/srv/x\ny = "evil"',
    "/srv/#comment",
    "/srv/= eq",
    "/srv/pipe|22|0A",
    "/srv/zoë ✓ ‘q’",
    "/srv/tab\there",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_host_paths_cannot_add_a_key(bed, path):
    backend = bed()
    keys_before = set(vmxfmt.parse(backend.path.read_bytes()).keys())
    backend.attach_share(
        vm="devvm", tag=TAG, source=path, protocol="hgfs", readonly=False, scopes=["persistent"]
    )
    parsed = vmxfmt.parse(backend.path.read_bytes())
    added = set(parsed.keys()) - keys_before
    assert added == {f"sharedFolder1.{k}" for k in (
        "present", "enabled", "readAccess", "writeAccess", "hostPath", "guestName", "expiration"
    )}  # fmt: skip
    assert parsed.get("sharedFolder1.hostPath") == path
    assert "y" not in parsed and parsed.get("sharedFolder1.guestName") == TAG
    assert backend.inspect("devvm").persistent_devices[TAG].source == path


def test_a_locked_vm_is_refused_and_its_file_unchanged(bed, tmp_path):
    backend = bed("fusion-mac.vmx")
    vmxfmt.lock_folder(backend.path).mkdir()  # open in Fusion, not running: vmrun lists nothing
    original = backend.path.read_bytes()
    assert not backend.running()
    with pytest.raises(vmxfmt.VmxLocked) as info:
        backend.attach_share(
            vm="devvm", tag=TAG, source=str(tmp_path), protocol="hgfs", readonly=False,
            scopes=["persistent"],
        )  # fmt: skip
    assert "in use by VMware" in info.value.message and info.value.hint
    assert backend.path.read_bytes() == original
    assert not (backend.path.parent / "devvm.vmx.vmshare-bak").exists()


def test_vmrun_errors_count_even_with_exit_status_0(bed, tmp_path):
    backend = bed()
    proc = subprocess.run(
        ["vmrun", "-T", "ws", "addSharedFolder", str(backend.path), "x", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("Error: ")  # as vmrun does
    with pytest.raises(HypervisorError) as info:
        backend.vmrun.run("addSharedFolder", "x", str(tmp_path))
    assert "vmrun addSharedFolder failed: The virtual machine is not powered on" in (
        info.value.message
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["-T", "esx", "list"],
        ["-x", "list"],
        ["frobnicate", "{vmx}"],
        ["addSharedFolder", "{vmx}", "only-a-name"],
        ["setSharedFolderState", "{vmx}", "n", "/tmp", "sometimes"],
        ["runProgramInGuest", "{vmx}", "/bin/true"],  # no guest login
        ["-gu", "root", "-gp", "wrong", "runProgramInGuest", "{vmx}", "/bin/true"],
        ["start", "{vmx}", "fast"],
        ["list", "extra"],
    ],
)
def test_the_stand_in_takes_only_vmruns_syntax(bed, argv):
    backend = bed()
    args = [a.format(vmx=backend.path) for a in argv]
    proc = subprocess.run(["vmrun", *args], capture_output=True, text=True, check=False)
    assert proc.stdout.startswith("Error: "), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_vmrun_is_said_missing(bed, monkeypatch):
    backend = bed()
    backend.vmrun.program = None
    rows = backend.diagnose("devvm")
    assert [(r.name, r.status) for r in rows] == [("vmrun", "fail")]
    assert "vmrun missing" in rows[0].detail and rows[0].hint
    with pytest.raises(VmshareError, match="vmrun not found"):
        backend.inspect("devvm")


def test_doctor_rows_of_a_stopped_vm(bed):
    rows = bed().diagnose("devvm")
    assert [(r.name, r.status) for r in rows] == [
        ("vmrun", "ok"), ("vmx", "ok"), ("vmware tools", "info")
    ]  # fmt: skip


def test_another_vm_name_is_not_this_backends(bed):
    backend = bed()
    assert not backend.inspect("other").exists
    with pytest.raises(NotFoundError):
        backend.detach_share(vm="other", tag=TAG, scopes=["persistent"])


def test_the_guest_channel_never_shows_the_password(bed):
    backend = bed()
    channel = backend.guest_channel(backend.vm_settings)
    with pytest.raises(GuestError) as info:
        channel.run(["true"])  # the VM is off
    assert "not powered on" in info.value.message
    assert PASSWORD not in info.value.message and PASSWORD not in str(info.value.hint)


@pytest.mark.parametrize(
    ("reachable", "clients", "fstype"),
    [
        (True, ["vmhgfs-fuse", "vmhgfs"], "fuse.vmhgfs-fuse"),
        (True, ["vmhgfs-fuse"], "fuse.vmhgfs-fuse"),
        (True, ["vmhgfs"], "vmhgfs"),
        (False, [], "fuse.vmhgfs-fuse"),  # the VM is off: open-vm-tools 10+ is the rule
    ],
)
def test_the_guests_hgfs_client_decides_the_mount(reachable, clients, fstype):
    guest = GuestFacts(reachable=reachable, hgfs_clients=clients)
    protocol, reason = hgfs_guest_client(guest, "devvm")
    assert protocol.fstype == fstype
    assert (reason is not None) == (fstype == "vmhgfs")
    source = protocol.source(TAG)
    options = protocol.mount_options(readonly=True, extra=[], source=source, owner=(7, 8))
    if fstype == "vmhgfs":  # the kernel module knows no FUSE options
        assert options == ["ro", "uid=7", "gid=8"]
        assert mount_argv(source, "/mnt/x", fstype, options) == [
            "mount.vmhgfs", source, "/mnt/x", "-o", "ro,uid=7,gid=8",
        ]  # fmt: skip


def test_a_guest_without_an_hgfs_client_is_refused_with_the_package_to_install():
    with pytest.raises(UsageError) as info:
        hgfs_guest_client(GuestFacts(reachable=True, hgfs_clients=[]), "devvm")
    assert info.value.message == (
        "VM 'devvm' has no HGFS client: neither vmhgfs-fuse nor the vmhgfs kernel module's "
        "mount.vmhgfs"
    )
    assert "install open-vm-tools in the guest (it brings vmhgfs-fuse)" in str(info.value.hint)


def test_hgfs_mounts_with_vmhgfs_fuse_and_persists_as_its_fuse_type():
    hgfs = device_protocol("hgfs")
    source = hgfs.source(TAG)
    options = hgfs.mount_options(readonly=True, extra=["noatime"], source=source, owner=(7, 8))
    assert source == f".host:/{TAG}"
    assert options == [
        "ro", "allow_other", "subtype=vmhgfs-fuse", f"fsname={source}", "uid=7", "gid=8",
        "noatime",
    ]  # fmt: skip
    assert mount_argv(source, "/mnt/src", hgfs.fstype, options) == [
        "vmhgfs-fuse", source, "/mnt/src", "-o", ",".join(options)
    ]  # fmt: skip


def cli(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmshare.cli", *args],
        capture_output=True, text=True, cwd=tmp_path, check=False,
        env={**os.environ, "COLUMNS": "250", "VMSHARE_STATE_DIR": str(tmp_path / "state"), **env},
    )  # fmt: skip


def test_dry_run_shows_the_vmx_keys_the_guest_mount_and_the_fstab_line(bed, tmp_path):
    """The issue's done-when: `vmshare add ./src devvm:/mnt/src --backend vmware-desktop
    --dry-run`, with host.toml's [vm.devvm] table giving the vmx."""
    backend = bed()
    (tmp_path / "src").mkdir()
    src = tmp_path / "src"
    uid, gid = src.stat().st_uid, src.stat().st_gid
    host = tmp_path / "host.toml"
    host.write_text(
        f'[vm.devvm]\nvmx = "{backend.path}"\n'
        '[vm.devvm.guest]\nlogin_password_env = "VMSHARE_UT_GUEST_PASSWORD"\n'
    )
    env = {"VMSHARE_HOST_CONFIG": str(host)}
    original = backend.path.read_bytes()
    argv = ["add", "./src", "devvm:/mnt/src", "--backend", "vmware-desktop", "--dry-run"]
    proc = cli(tmp_path, *argv, env=env)
    assert proc.returncode == 2, proc.stderr  # blocked: the VM is off
    out = proc.stdout
    source = f".host:/{TAG}"
    options = f"rw,allow_other,subtype=vmhgfs-fuse,fsname={source},uid={uid},gid={gid}"
    for line in (
        f'.vmx: sharedFolder1.hostPath = "{src}"',
        f'.vmx: sharedFolder1.guestName = "{TAG}"',
        '.vmx: sharedFolder1.writeAccess = "TRUE"',
        '.vmx: sharedFolder.maxNum = "2"',
        f"guest: vmhgfs-fuse {source} /mnt/src -o {options}",
        f"/etc/fstab: {source} /mnt/src fuse.vmhgfs-fuse {options},nofail 0 0",
        "vmrun takes the guest password on its command line",
        "Prefer ssh",
        f"-gp '<guest password>' runProgramInGuest {backend.path}",
    ):
        assert line in out, (line, out, proc.stderr)
    assert "is not running" in out
    started = cli(tmp_path, *argv, "--restart", env=env)
    assert f"vmrun -T ws start {backend.path} nogui" in started.stdout
    data = json.loads(cli(tmp_path, *argv, "--json", env=env).stdout)["data"]
    attach = next(s for s in data["plan"]["steps"] if s["action"] == "attach_share")
    assert f'.vmx: sharedFolder1.hostPath = "{src}"' in attach["script"].splitlines()
    for text in (proc.stdout, proc.stderr, started.stdout, json.dumps(data)):
        assert PASSWORD not in text
    assert backend.path.read_bytes() == original  # a dry run changes nothing


def test_vmxfacts_read_the_fixtures():
    fusion = vmxfmt.parse((DATA / "fusion-mac.vmx").read_bytes())
    assert vmxfacts.devices(fusion) == {}  # the user's folders are not vmshare's
    assert vmxfacts.hgfs_enabled(fusion) and vmxfacts.guest_os(fusion) == "arm-debian12-64"
    win = vmxfmt.parse((DATA / "workstation-win.vmx").read_bytes())
    assert not vmxfacts.hgfs_enabled(win)


def test_no_vmrun_on_path_is_found_nowhere(monkeypatch, tmp_path):
    from vmshare.backends.vmware_desktop import vmrun

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(vmrun, "INSTALL_PATHS", {sys.platform: (str(tmp_path / "none"),)})
    assert vmrun.find_vmrun(None) is None
    assert vmrun.find_vmrun(str(tmp_path / "absent")) is None


def test_a_vm_named_in_the_inventory_is_found_by_its_name(tmp_path, monkeypatch):
    from vmshare.backends.vmware_desktop import inventory

    vmx = tmp_path / "VMs" / "dev vm" / "dev vm.vmx"
    vmx.parent.mkdir(parents=True)
    vmx.write_bytes(TEMPLATE.read_bytes())
    listing = tmp_path / "inventory.vmls"
    listing.write_text(
        '.encoding = "UTF-8"\n'
        f'vmlist1.config = "{vmx}"\nvmlist1.DisplayName = "dev vm"\nvmlist1.ItemID = "1"\n'
        'vmlist2.config = "/elsewhere/a.vmx"\nvmlist2.DisplayName = "twin"\n'
        'vmlist3.config = "/elsewhere/b.vmx"\nvmlist3.DisplayName = "twin"\n'
        'index0.field0.name = "guestOS"\n'
    )
    monkeypatch.setattr(inventory, "INVENTORY_PATHS", {sys.platform: (str(listing),)})
    settings = VmwareDesktopVm(name="devvm", vmx="dev vm")
    backend = VmwareDesktopBackend(settings)
    assert backend.path == vmx and backend.vmrun.vmx == str(vmx)
    with pytest.raises(VmshareError, match="2 VMs are called 'twin'"):
        inventory.find_vmx("twin")
    missing = VmwareDesktopBackend(VmwareDesktopVm(name="devvm", vmx="nothere"))
    facts = missing.inspect("devvm")
    assert not facts.exists and "VMs there: dev vm, twin" in facts.find_hint
    with pytest.raises(ValueError, match=r"path of the VM's \.vmx file or its name"):
        VmwareDesktopVm(name="devvm", vmx="/some/folder/devvm.vmdk")


def test_the_product_is_vmruns_host_type(bed):
    from vmshare.backends.vmware_desktop.vmrun import Vmrun, product_of

    assert product_of("fusion") == "fusion" and product_of("ws") == "ws"
    assert product_of("auto") == ("fusion" if sys.platform == "darwin" else "ws")
    backend = bed()
    fusion = Vmrun(backend.vmrun.program, "fusion", str(backend.path))
    _, out = fusion.run("list")  # the stand-in takes -T fusion as vmrun does
    assert out.startswith("Total running VMs: 0")
    assert fusion.argv("checkToolsState")[1:3] == ["-T", "fusion"]
