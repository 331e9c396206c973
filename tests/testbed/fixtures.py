"""The test bed's pytest fixtures: one real QEMU guest under libvirt for the whole session, the
loopback file servers, the real CLI, and the ssh guest.

A pytest plugin (``pytest_plugins`` in tests/conftest.py), not a conftest of one folder, so that
tests/integration and tests/contract see the same session fixtures (one guest, one pair of
servers per run). Test modules import its helpers (Guest, Vmshare, make_tree...) from here.

Nothing here skips: if libvirtd or the guest cannot start, every integration test errors, so a
CI run without the test bed fails loudly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from tests.testbed.domain import (
    agent_exec,
    authorize_ssh_key,
    boot_domain,
    destroy_domain,
    reboot_guest,
    ssh_host_key,
)
from tests.testbed.guest_image import build_image
from tests.testbed.libvirtd import ensure_libvirtd
from tests.testbed.servers import Ganesha, Samba, free_port
from tests.testbed.vbox.bed import VboxBed
from tests.testbed.vcsim import Vcsim
from vmshare.backends.vmware_desktop.settings import VmwareDesktopVm
from vmshare.backends.vsphere.settings import VsphereVm
from vmshare.formats import ownedblock
from vmshare.formats import vmx as vmxfmt
from vmshare.spec import GuestAccess

URI = "qemu:///system"
# VMSHARE_IT_VM lets several test runs share one libvirtd (each boots its own guests)
VM = os.environ.get("VMSHARE_IT_VM", "vmshare-it")
# The host's Samba account for the tests' shares: the test run's own (vmshare removes the account
# it made once its last share goes, and keeps one it found: a machine where vmshare's default
# account already exists must not change what the tests see).
SMB_ACCOUNT = ("vs-" + re.sub(r"[^a-z0-9_-]", "-", VM.lower()))[:31]

# Owner of network-shared test trees: www-data is not root (vmshare refuses to make every guest
# user write as root unasked) and has a name (Samba maps nobody to its guest account).
OWNER = (33, 33)


@dataclass
class Guest:
    dom: libvirt.virDomain
    name: str
    boot_seconds: float

    def run(self, *argv: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        return agent_exec(self.dom, list(argv), stdin=stdin)

    def sh(self, script: str, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        return self.run("sh", "-c", script, "sh", *args, stdin=stdin)

    def read(self, path: str) -> bytes:
        code, out, err = self.run("cat", path)
        assert code == 0, err
        return out

    def fstab(self) -> str:
        return self.sh("cat /etc/fstab 2>/dev/null || true")[1].decode()

    def mounts(self) -> dict[str, tuple[str, str, str]]:
        """mount point -> (source, fstype, options), decoded from /proc/mounts."""
        from vmshare.formats.fstab import parse_table

        text = self.read("/proc/self/mounts").decode()
        return {m.target: (m.source, m.fstype, ",".join(m.options)) for m in parse_table(text)}

    def filesystems(self, live: bool = True) -> dict[str, str]:
        """tag -> source dir of the domain's filesystem devices (live or persistent config)."""
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        root = ET.fromstring(self.dom.XMLDesc(flags))
        return {
            fs.find("target").get("dir"): fs.find("source").get("dir")
            for fs in root.findall("./devices/filesystem")
        }

    def reboot(self) -> float:
        return reboot_guest(self.dom)


@pytest.fixture(scope="session")
def guest() -> Iterator[Guest]:
    ensure_libvirtd(URI)
    image = build_image()
    dom, seconds = boot_domain(URI, VM, Path("/var/tmp/vmshare-testbed") / VM, image)
    print(f"\ntest guest {VM} booted to agent in {seconds:.1f} s")
    yield Guest(dom, VM, seconds)
    destroy_domain(URI, VM)


@dataclass
class Vmshare:
    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    transcript: list[str] = field(default_factory=list)  # every output, to grep for secrets

    def environ(self, env: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "VMSHARE_STATE_DIR": str(self.state_dir), **self.env, **(env or {})}

    def __call__(
        self, *args: str, check: bool | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "vmshare.cli", *args],
            capture_output=True,
            text=True,
            env=self.environ(env),
            timeout=600,
        )
        self.transcript += [proc.stdout, proc.stderr]
        if check:
            assert proc.returncode == 0, f"vmshare {args} -> {proc.returncode}\n{proc.stderr}"
        return proc

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """This vmshare run started, not awaited (the fault tests pause and resume it)."""
        return subprocess.Popen(
            [sys.executable, "-m", "vmshare.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environ(env),
        )

    def json(self, *args: str) -> dict:
        proc = self(*args, "--json")
        assert proc.stdout, proc.stderr
        return json.loads(proc.stdout)

    def shares(self) -> list[dict]:
        return self.json("list")["data"]

    def at_once(self, *argvs: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Start these vmshare runs at the same moment; their results in order."""
        with ThreadPoolExecutor(len(argvs)) as pool:
            return list(pool.map(lambda argv: self(*argv), argvs))


@dataclass
class FileServers:
    ganesha: Ganesha
    samba: Samba
    host_config: Path


def smb_account_exists() -> bool:
    return subprocess.run(["id", "-u", SMB_ACCOUNT], capture_output=True).returncode == 0


def drop_smb_account(host_config: str | None) -> None:
    """Take the tests' Samba account away (its Unix user and its entry in the smb.conf that
    ``host_config`` names): what a test leaves when it loses vmshare's record of the share
    that made it (`vmshare prune` leaves the account: it cannot tell it was vmshare's)."""
    if host_config:
        smb = tomllib.loads(Path(host_config).read_text()).get("smb", {})
        if "smb_conf" in smb:
            argv = ["smbpasswd", "-c", smb["smb_conf"], "-x", SMB_ACCOUNT]
            subprocess.run(argv, capture_output=True, check=False)
    subprocess.run(["userdel", SMB_ACCOUNT], capture_output=True, check=False)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServers]:
    """nfs-ganesha and smbd on loopback, and the host.toml that points vmshare at them."""
    root = tmp_path_factory.mktemp("servers")
    # an account of this name is the tests' own: one left by a killed run goes first
    subprocess.run(["userdel", SMB_ACCOUNT], capture_output=True, check=False)
    with Ganesha.start(root / "ganesha") as ganesha, Samba.start(root / "samba") as samba:
        config = root / "host.toml"
        config.write_text(
            "[nfs]\n"
            'exporter = "ganesha"\n'
            f"port = {ganesha.port}\n"
            f'exports_file = "{ganesha.exports_path}"\n'
            f'ganesha_config = "{ganesha.config_path}"\n'
            f'ganesha_pidfile = "{ganesha.pidfile}"\n'
            "[smb]\n"
            f"port = {samba.port}\n"
            f'smb_conf = "{samba.config_path}"\n'
            f'include_file = "{root / "samba" / "vmshare.conf"}"\n'
            f'account = "{SMB_ACCOUNT}"\n'
        )
        yield FileServers(ganesha, samba, config)


@pytest.fixture
def vmshare(tmp_path: Path, guest: Guest, open_tmp: Path) -> Iterator[Vmshare]:
    """The real CLI with a private state dir; shares a test leaves behind are removed after it.

    It asks for ``open_tmp`` so that pytest removes that folder only after these removals: a
    share whose host folder went first could not be taken away cleanly, and its device, left in
    the VM's config, stopped the next restart ("the virtiofs export directory ... does not
    exist"). A removal that fails is an error of the test that left the share.
    """
    runner = Vmshare(tmp_path / "state")
    yield runner
    failed = {}
    for share in runner.shares():
        done = runner("remove", share["key"], "--restart", "--yes")
        if done.returncode != 0:
            failed[share["key"]] = done.stderr.strip()
    assert not failed, f"could not remove the shares a test left: {failed}"


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp folder every host user can traverse (pytest's tmp_path is under a 0700 folder):
    Samba's forced non-root owner must reach a shared folder inside it."""
    base = Path("/var/tmp/vmshare-testbed") / VM
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="shares-", dir=base))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def exported(servers: FileServers, protocol: str) -> dict[str, str]:
    path = (
        servers.ganesha.exports_path
        if protocol == "nfs"
        else servers.host_config.parent / "samba" / "vmshare.conf"
    )
    return ownedblock.entries(path.read_text()) if path.exists() else {}


def tree_digest(root: Path) -> dict[str, str]:
    """Checksum of every entry below root (content, link target, mode), to prove nothing changed."""
    digest = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            digest[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            digest[rel] = f"dir:{path.stat().st_mode:o}"
        else:
            data = hashlib.sha256(path.read_bytes()).hexdigest()
            digest[rel] = f"file:{path.stat().st_mode:o}:{data}"
    return digest


def make_tree(root: Path, owner: tuple[int, int] | None = None) -> Path:
    """A small tree of every kind of entry; with ``owner``, its top folder belongs to it (a
    network share refuses to make guest users write as root unasked)."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "hello.txt").write_text("hello from the host\n")
    (root / "sub" / "deeper" / "data.bin").write_bytes(bytes(range(256)) * 64)
    (root / "link").symlink_to("hello.txt")
    if owner is not None:
        os.chown(root, *owner)
    return root


@dataclass
class VsphereBed:
    """The simulator's VM as vmshare's user describes it: a host.toml with the loopback file
    servers and the VM's [vm.NAME] table (passwords as env references), and those variables."""

    vm: str
    host_config: Path
    env: dict[str, str]

    def settings(self) -> VsphereVm:
        from vmshare.spec import HostSettings

        text = tomllib.loads(self.host_config.read_text())
        vm = HostSettings.model_validate(text).vm[self.vm]
        assert isinstance(vm, VsphereVm)
        return vm


def vsphere_table(vcsim: Vcsim, server: str | None = None) -> str:
    """The VM's [vm.NAME] table; ``server``: another host:port in front of the simulator."""
    return (
        f'[vm."{vcsim.vm}"]\n'
        'backend = "vsphere"\n'
        f'server = "{server or f"{vcsim.host}:{vcsim.port}"}"\n'
        f'user = "{vcsim.username}"\n'
        'password_env = "VMSHARE_IT_VC_PASSWORD"\n'
        f'ca_file = "{vcsim.ca_file}"\n'
        f'[vm."{vcsim.vm}".guest]\n'
        f'login_user = "{vcsim.guest_user}"\n'
        'login_password_env = "VMSHARE_IT_GUEST_PASSWORD"\n'
    )


@pytest.fixture(scope="session")
def vsphere(vcsim: Vcsim, servers: FileServers) -> VsphereBed:
    config = servers.host_config.parent / "host-vsphere.toml"
    config.write_text(servers.host_config.read_text() + "\n" + vsphere_table(vcsim))
    env = {
        "VMSHARE_HOST_CONFIG": str(config),
        "VMSHARE_IT_VC_PASSWORD": vcsim.password,
        "VMSHARE_IT_GUEST_PASSWORD": vcsim.guest_password,
    }
    return VsphereBed(vcsim.vm, config, env)


@pytest.fixture(scope="session")
def vcsim(guest: Guest) -> Iterator[Vcsim]:
    """The vCenter simulator for the session; its VM ``vcsim.vm`` stands for the test guest:
    guest operations on it run in the real guest through its agent."""

    def guest_exec(
        argv: Sequence[str], stdin: bytes | None, timeout: float
    ) -> tuple[int, bytes, bytes]:
        return agent_exec(guest.dom, argv, stdin=stdin, timeout=timeout)

    with Vcsim(guest_exec=guest_exec) as sim:
        print(f"\nvcsim at {sim.url} ready in {sim.start_seconds:.2f} s")
        yield sim


@dataclass
class SshGuest:
    """A guest of its own with dropbear, reached from the host's OpenSSH on a loopback port."""

    dom: libvirt.virDomain
    name: str
    access: GuestAccess


@pytest.fixture(scope="session")
def ssh_guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGuest]:
    name = f"{VM}-ssh"
    work = tmp_path_factory.mktemp("ssh")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = free_port()
    dom, _ = boot_domain(URI, name, Path("/var/tmp/vmshare-testbed") / name, ssh_port=port)
    try:
        authorize_ssh_key(dom, (work / "id_ed25519.pub").read_text())
        known_hosts = work / "known_hosts"
        known_hosts.write_text(ssh_host_key(dom))
        access = GuestAccess(
            channel="ssh",
            ssh_host="127.0.0.1",
            ssh_port=port,
            ssh_key=str(key),
            ssh_known_hosts=str(known_hosts),
        )
        yield SshGuest(dom, name, access)
    finally:
        destroy_domain(URI, name)


@dataclass
class VmwareBed:
    """A Workstation VM as vmshare's user describes it: its .vmx, the vmrun stand-in on PATH
    (tests/testbed/vmrun) that maps it to the session's test guest, and a host.toml with its
    ``[vm.NAME]`` table (the guest password as an env reference)."""

    vm: str
    vmx: Path
    bin_dir: Path
    host_config: Path
    env: dict[str, str]
    guest: Guest

    def settings(self, vm: str | None = None) -> VmwareDesktopVm:
        from vmshare.spec import HostSettings

        text = tomllib.loads(self.host_config.read_text())
        vm = HostSettings.model_validate(text).vm[vm or self.vm]
        assert isinstance(vm, VmwareDesktopVm)
        return vm

    def freeze(self, command: str = "") -> None:
        """vmrun commands starting with ``command`` (all: "") hang until ``thaw``."""
        from tests.testbed.vmrun.cli import FREEZE

        (self.bin_dir / FREEZE).write_text(command)

    def thaw(self) -> None:
        from tests.testbed.vmrun.cli import FREEZE

        (self.bin_dir / FREEZE).unlink(missing_ok=True)

    def reset_vmx(self) -> None:
        """The .vmx as the test bed made it (the user's own folder in it), the VM running."""
        folders = {k for k in self.guest.filesystems() if k.startswith("vmshare-")}
        assert not folders, f"HGFS folders left in the running VM: {folders}"
        self.vmx.write_bytes(VMX_TEMPLATE.read_bytes())


VMX_TEMPLATE = Path(__file__).with_name("vmrun") / "devvm.vmx"
VMWARE_VM = "devvm"  # the session's test guest, running
VMWARE_OFF = "offvm"  # a VM that is not running: its folders go into its .vmx


def vmware_table(vm: str, vmx: Path, guest: str = "") -> str:
    return (
        f"[vm.{vm}]\n"
        'backend = "vmware"\n'
        f'vmx = "{vmx}"\n'
        'product = "ws"\n'
        f"[vm.{vm}.guest]\n"
        'login_user = "root"\n'
        'login_password_env = "VMSHARE_IT_VMRUN_PASSWORD"\n' + guest
    )


@pytest.fixture(scope="session")
def vmware(guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmwareBed]:
    """The vmrun stand-in on PATH for the session; its VM ``devvm`` is the test guest, running."""
    from tests.testbed.vmrun import StandInVm, install

    root = tmp_path_factory.mktemp("vmware")
    vmxs = {}
    for name in (VMWARE_VM, VMWARE_OFF):
        folder = root / "Virtual Machines" / name
        folder.mkdir(parents=True)
        vmxs[name] = folder / f"{name}.vmx"
        vmxs[name].write_bytes(VMX_TEMPLATE.read_bytes())
    vmx = vmxs[VMWARE_VM]
    password = "vmrun-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]
    bin_dir = root / "bin"
    # offvm stands for a VM that is off: no lock folder (and it is never started)
    install(bin_dir, [StandInVm(p, guest.name, URI) for p in vmxs.values()], ("root", password))
    vmxfmt.lock_folder(vmx).mkdir()  # the guest runs: VMware holds the VM
    config = root / "host.toml"
    config.write_text("".join(vmware_table(name, path) for name, path in vmxs.items()))
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {
        "PATH": path,
        "VMSHARE_HOST_CONFIG": str(config),
        "VMSHARE_IT_VMRUN_PASSWORD": password,
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # in-process backends find vmrun and the password too
    try:
        yield VmwareBed(VMWARE_VM, vmx, bin_dir, config, env, guest)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class VmwareSshBed:
    """A Workstation VM whose guest vmshare reaches over ssh (the ssh test guest), with the
    loopback file servers: the network-share path of the vmware-desktop backend."""

    vm: str
    guest: Guest
    host_config: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def vmware_ssh(
    vmware: VmwareBed, ssh_guest: SshGuest, servers: FileServers, tmp_path_factory
) -> VmwareSshBed:
    from tests.testbed.vmrun import StandInVm, install

    root = tmp_path_factory.mktemp("vmware-ssh")
    folder = root / "Virtual Machines" / "sshvm"
    folder.mkdir(parents=True)
    vmx = folder / "sshvm.vmx"
    vmx.write_bytes(VMX_TEMPLATE.read_bytes())
    vmxfmt.lock_folder(vmx).mkdir()
    password = vmware.env["VMSHARE_IT_VMRUN_PASSWORD"]
    bin_dir = root / "bin"
    install(bin_dir, [StandInVm(vmx, ssh_guest.name, URI)], ("root", password))
    access = ssh_guest.access
    guest = (
        'channel = "ssh"\n'
        f'ssh_host = "{access.ssh_host}"\n'
        f"ssh_port = {access.ssh_port}\n"
        f'ssh_key = "{access.ssh_key}"\n'
        f'ssh_known_hosts = "{access.ssh_known_hosts}"\n'
    )
    # QEMU's user networking: the host's servers see the guest at 127.0.0.1
    table = vmware_table("sshvm", vmx, guest).replace(
        'product = "ws"\n', 'product = "ws"\nclient_address = "127.0.0.1"\n'
    )
    config = root / "host.toml"
    config.write_text(servers.host_config.read_text() + "\n" + table)
    env = {
        **vmware.env,
        "PATH": f"{bin_dir}{os.pathsep}{vmware.env['PATH']}",
        "VMSHARE_HOST_CONFIG": str(config),
    }
    return VmwareSshBed("sshvm", Guest(ssh_guest.dom, ssh_guest.name, 0.0), config, env)


VBOX_GUEST_PASSWORD = "vbox-guest-pw"  # the test bed guest's login for guest control


@dataclass
class VboxVm:
    """A "VirtualBox VM" of the test bed's model that stands for a libvirt test domain, and the
    host.toml (loopback file servers + its [vm.NAME] table) that vmshare's CLI reads."""

    bed: VboxBed
    vm: str
    uuid: str
    adapter: str
    host_config: Path
    env: dict[str, str]


def vbox_table(vm: str, adapter: str, symlinks: bool = False, guest: str | None = None) -> str:
    return (
        f'[vm."{vm}"]\nbackend = "virtualbox"\nadapter = "{adapter}"\n'
        + ("symlinks = true\n" if symlinks else "")
        + f'[vm."{vm}".guest]\n'
        + (guest or 'login_user = "root"\nlogin_password_env = "VMSHARE_IT_VBOX_GUEST_PASSWORD"\n')
    )


def vbox_vm(
    bed: VboxBed,
    servers: FileServers,
    runner: Vmshare,
    domain: str,
    adapter: str,
    *,
    name: str = "vboxvm",
    running: bool = True,
    guest_additions: str | None = "7.0.14",
    symlinks: bool = False,
    guest: str | None = None,
) -> VboxVm:
    """Register the VM in the bed's model and point ``runner`` (the CLI) at it."""
    uuid = bed.model.create(
        name,
        running=running,
        guest_additions=guest_additions,
        domain=domain,
        logins={"root": VBOX_GUEST_PASSWORD},
    )
    config = bed.root / "host.toml"
    config.write_text(
        servers.host_config.read_text() + "\n" + vbox_table(name, adapter, symlinks, guest)
    )
    env = {
        **bed.env,
        "VMSHARE_HOST_CONFIG": str(config),
        "VMSHARE_IT_VBOX_GUEST_PASSWORD": VBOX_GUEST_PASSWORD,
    }
    runner.env.update(env)
    return VboxVm(bed, name, uuid, adapter, config, env)


@pytest.fixture
def vbox_bed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VboxBed]:
    """The test bed's VirtualBox for one test: a fresh machine model, the VBoxManage stand-in
    first on PATH and the model's variable set (tests/testbed/vbox). Afterwards (after the
    ``vmshare`` fixture removed what a test left, when the test asked for it later) any virtiofs
    device that still stands for one of its folders leaves the test domain."""
    bed = VboxBed(tmp_path / "vbox")
    for name, value in bed.env.items():
        monkeypatch.setenv(name, value)
    yield bed
    bed.unplug_all()
