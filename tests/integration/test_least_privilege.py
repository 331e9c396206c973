"""vmshare without a root shell: a throwaway unprivileged user adds and removes a real SMB share
(Samba) and a real NFS share (nfs-ganesha), each with exactly the sudoers lines that
`vmshare doctor --sudoers` prints, and without them is refused with the hint. While it runs, no
secret may appear in any process argv of vmshare's tree, its output, its state files or its
journal.

The VM is the vCenter simulator's, which stands for the real QEMU test guest (guest operations
reach it through the test bed): vmshare reaches it over HTTPS as any user. libvirt's
qemu:///system needs root or polkit here, so the libvirt backend is not run unprivileged.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import site
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.testbed.fixtures import (
    OWNER,
    SMB_ACCOUNT,
    Guest,
    make_tree,
    tree_digest,
    vsphere_table,
)
from tests.testbed.servers import Ganesha, Samba
from tests.testbed.vcsim import Vcsim

import vmshare
from vmshare.formats import ownedblock
from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration

SRC = str(Path(vmshare.__file__).parent.parent)


@pytest.fixture
def user() -> Iterator[pwd.struct_passwd]:
    """A user with no rights at all, for this test only."""
    name = f"vmshare-lp{os.getpid() % 100000}"
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
        check=True,
    )
    entry = pwd.getpwnam(name)
    # vmshare's code, its packages and this Python may sit under a folder only root may enter
    # (a checkout or pyenv under /root): let the user through those folders, for this test only
    granted: dict[Path, bool] = {}  # folder -> whether it had an ACL of its own before
    for path in {Path(SRC), *map(Path, site.getsitepackages()), Path(sys.executable).resolve()}:
        for folder in [path, *path.parents]:
            if folder.is_dir() and not folder.stat().st_mode & 0o001 and folder not in granted:
                acl = subprocess.run(
                    ["getfacl", "--skip-base", "--absolute-names", str(folder)],
                    capture_output=True,
                    check=True,
                )
                granted[folder] = bool(acl.stdout.strip())
                subprocess.run(["setfacl", "-m", f"u:{entry.pw_uid}:x", str(folder)], check=True)
    yield entry
    for folder, had_acl in granted.items():  # as it was: no ACL left behind where none was
        undo = ["-x", f"u:{entry.pw_uid}"] if had_acl else ["-b"]
        subprocess.run(["setfacl", *undo, str(folder)], check=False)
    subprocess.run(["userdel", name], capture_output=True, check=False)


class ProcessWatch:
    """Samples the argv of a process and all its descendants every few ms while it runs."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.root = proc.pid
        self.proc = proc
        self.argvs: set[bytes] = set()
        self.samples = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.proc.poll() is None:
            self._sample()
            time.sleep(0.002)

    def _sample(self) -> None:
        parents: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stat = Path(f"/proc/{entry.name}/stat").read_bytes()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(b")", 1)[1].split()[1])
        tree = {self.root}
        changed = True
        while changed:
            found = {pid for pid, parent in parents.items() if parent in tree} - tree
            tree |= found
            changed = bool(found)
        for pid in tree:
            try:
                self.argvs.add(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                continue
        self.samples += 1

    def programs(self) -> set[str]:
        return {os.path.basename(a.split(b"\0")[0].decode()) for a in self.argvs if a}


class AsUser:
    """The real CLI as ``user``, with an environment of its own."""

    def __init__(self, user: pwd.struct_passwd, home: Path, env: dict[str, str]) -> None:
        self.user = user
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",  # a user's PATH: no sbin
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join([SRC, *site.getsitepackages()]),
            "VMSHARE_STATE_DIR": str(home / "state"),
            **env,
        }
        self.python = self._python()
        self.outputs: list[bytes] = []
        self.watches: list[ProcessWatch] = []

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            user=self.user.pw_uid,
            group=self.user.pw_gid,
            extra_groups=[],
            env=self.env,
            cwd=self.env["HOME"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def _python(self) -> str:
        """This interpreter if the user may run it (a pyenv under /root is not), else the
        system's of the same version with this one's packages on PYTHONPATH."""
        for python in (
            sys.executable,
            f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}",
        ):
            try:
                proc = self._spawn([python, "-c", "import vmshare, pyVmomi, pydantic_core"])
            except PermissionError:
                continue
            if proc.wait(timeout=60) == 0:
                return python
        raise AssertionError(f"no Python the user {self.user.pw_name} can run vmshare with")

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self._spawn([self.python, "-m", "vmshare.cli", *args])
        watch = ProcessWatch(proc)
        out, err = proc.communicate(timeout=600)
        watch.thread.join()
        self.watches.append(watch)
        self.outputs += [out, err]
        return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


def root_commands(run: AsUser) -> str:
    """The status of doctor's "root commands" row."""
    import json

    checks = json.loads(run("doctor", "--json").stdout)["data"]
    (row,) = [c for c in checks if c["name"] == "root commands"]
    return str(row["status"])


def entries(path: Path) -> dict[str, str]:
    return ownedblock.entries(path.read_text()) if path.exists() else {}


def account_exists(name: str) -> bool:
    return subprocess.run(["id", "-u", name], capture_output=True).returncode == 0


@dataclass
class Server:
    """One loopback file server of the test's own, in a folder the user can read."""

    protocol: str
    host_toml: str  # its host.toml table
    files: list[Path]  # the config files vmshare edits (compared before and after)
    entries: Path  # where vmshare's entries for it live


@contextlib.contextmanager
def server(protocol: str, folder: Path, account: str) -> Iterator[Server]:
    if protocol == "smb":
        with Samba.start(folder / "samba") as samba:
            include = folder / "samba" / "vmshare.conf"
            yield Server(
                protocol,
                f'[smb]\nport = {samba.port}\nsmb_conf = "{samba.config_path}"\n'
                f'include_file = "{include}"\naccount = "{account}"\n',
                [samba.config_path],
                include,
            )
        return
    with Ganesha.start(folder / "ganesha") as ganesha:
        yield Server(
            protocol,
            f'[nfs]\nexporter = "ganesha"\nport = {ganesha.port}\n'
            f'exports_file = "{ganesha.exports_path}"\n'
            f'ganesha_config = "{ganesha.config_path}"\nganesha_pidfile = "{ganesha.pidfile}"\n',
            [ganesha.config_path, ganesha.exports_path],
            ganesha.exports_path,
        )


# What the watch may see run through sudo (a sample every few ms misses most short commands)
ROOT_PROGRAMS = {
    "smb": {"useradd", "smbpasswd", "pdbedit", "tee", "sync", "mv", "smbcontrol", "userdel", "rm"},
    "nfs": {"tee", "sync", "mv", "cp", "pkill"},
}


@pytest.mark.parametrize("protocol", ["smb", "nfs"])
def test_an_unprivileged_user_shares_with_exactly_the_printed_sudoers_lines(
    guest: Guest, vcsim: Vcsim, user: pwd.struct_passwd, open_tmp: Path, protocol: str
) -> None:
    home = open_tmp / "home"
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    account = f"{SMB_ACCOUNT[:27]}-lp"
    ca_file = open_tmp / "vcsim-ca.pem"
    shutil.copy(vcsim.ca_file, ca_file)
    ca_file.chmod(0o644)
    sudoers_file = Path("/etc/sudoers.d") / f"vmshare-test-{user.pw_name}"
    secret = None
    with server(protocol, open_tmp, account) as bed:
        host_toml = open_tmp / "host.toml"
        table = vsphere_table(vcsim).replace(str(vcsim.ca_file), str(ca_file))
        host_toml.write_text(f"{bed.host_toml}\n{table}")
        run = AsUser(
            user,
            home,
            {
                "VMSHARE_HOST_CONFIG": str(host_toml),
                "VMSHARE_IT_VC_PASSWORD": vcsim.password,
                "VMSHARE_IT_GUEST_PASSWORD": vcsim.guest_password,
            },
        )
        src = make_tree(open_tmp / "lp-share", OWNER)
        target = f"/mnt/lp-{protocol}"
        tag = mount_tag(f"{vcsim.vm}:{target}")
        add = ("add", str(src), f"{vcsim.vm}:{target}", "--protocol", protocol)
        add += ("--backend", "vsphere", "--owner", f"{OWNER[0]}:{OWNER[1]}")
        for file in bed.files:  # an owner and mode of the admin's: vmshare's edits keep them
            os.chown(file, 0, OWNER[1])
            file.chmod(0o664)
        before = {f: f.read_bytes() for f in bed.files}
        fstab_before, digest = guest.fstab(), tree_digest(src)

        printed = run("doctor", "--sudoers")
        assert printed.returncode == 0, printed.stderr
        lines = printed.stdout
        assert f"{user.pw_name} ALL=(root) NOPASSWD:" in lines
        assert all(str(f) in lines for f in bed.files)
        candidate = open_tmp / "vmshare.sudoers"
        candidate.write_text(lines)
        check = subprocess.run(["visudo", "-cf", str(candidate)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr

        try:
            # without the lines: refused before the first step (sudo -l), nothing changed
            refused = run(*add)
            assert refused.returncode != 0, refused.stderr
            (error,) = [x for x in refused.stderr.splitlines() if x.startswith("error: ")]
            (hint,) = [x for x in refused.stderr.splitlines() if x.startswith("hint: ")]
            assert "sudo would refuse" in error and "nothing was changed" in error, error
            assert "✓" not in refused.stderr and "↶" not in refused.stderr, refused.stderr
            assert "`vmshare doctor --sudoers`" in hint, hint
            assert {f: f.read_bytes() for f in bed.files} == before
            assert not account_exists(account)
            assert root_commands(run) == "warn"  # doctor says so before anything is tried

            shutil.copy(candidate, sudoers_file)
            sudoers_file.chmod(0o440)
            assert root_commands(run) == "ok"
            added = run(*add)
            assert added.returncode == 0, added.stderr
            assert tag in entries(bed.entries)
            assert {(f.stat().st_mode & 0o7777, f.stat().st_gid) for f in bed.files} == {
                (0o664, OWNER[1])
            }
            assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
            if protocol == "smb":
                assert account_exists(account)
                secret = (home / "state" / "secrets" / f"smb-{account}").read_text().strip()
            state_files = {
                p: p.read_bytes()
                for p in (home / "state").rglob("*")
                if p.is_file() and "secrets" not in p.parts
            }

            removed = run("remove", f"{vcsim.vm}:{target}", "--yes")
            assert removed.returncode == 0, removed.stderr
            assert target not in guest.mounts() and guest.fstab() == fstab_before
            assert tag not in entries(bed.entries)
            assert {f: f.read_bytes() for f in bed.files if f != bed.entries} == {
                f: data for f, data in before.items() if f != bed.entries
            }
            assert not account_exists(account)
            assert tree_digest(src) == digest
            assert {(f.stat().st_mode & 0o7777, f.stat().st_gid) for f in bed.files} == {
                (0o664, OWNER[1])
            }
        finally:
            sudoers_file.unlink(missing_ok=True)
            subprocess.run(["userdel", account], capture_output=True, check=False)

    # Every command that needed root ran through sudo, and the watch saw them run.
    seen = set().union(*(w.programs() for w in run.watches))
    assert "sudo" in seen and seen & ROOT_PROGRAMS[protocol], seen
    assert sum(w.samples for w in run.watches) > 100
    secrets = [vcsim.password, vcsim.guest_password] + ([secret] if secret else [])
    assert all(s and len(s) >= 8 for s in secrets) and len(secrets) == 2 + (protocol == "smb")
    argvs = set().union(*(w.argvs for w in run.watches))
    for value in (s.encode() for s in secrets):
        assert not [a for a in argvs if value in a], "a secret in a process argv"
        assert not [o for o in run.outputs if value in o], "a secret in vmshare's output"
        leaked = [str(p) for p, data in state_files.items() if value in data]
        assert not leaked, f"a secret in {leaked}"
        after = [p for p in (home / "state").rglob("*") if p.is_file()]
        assert not [p for p in after if value in p.read_bytes()], "a secret left in the state"


HOSTILE = "/var/tmp/vmshare-lp,a:b=c*d?e[f]g!h#i(l)m{n}o|p$q.r+s"


def allowed(user: str, argv: list[str]) -> bool:
    """Whether sudo's policy lets ``user`` run ``argv`` as root (asked, not run)."""
    return subprocess.run(["sudo", "-l", "-U", user, *argv], capture_output=True).returncode == 0


def test_the_printed_lines_allow_exactly_the_listed_commands_even_on_hostile_paths(
    user: pwd.struct_passwd,
) -> None:
    """Every command of the list is allowed as listed, through sudoers' escaping of , : = * ? [ ]
    ! #; a neighbouring path, an extra argument or another share name is not."""
    from vmshare.host import privileged
    from vmshare.hostexec import program
    from vmshare.spec import HostSettings, NfsHost, SmbHost

    settings = HostSettings(
        nfs=NfsHost(
            exporter="ganesha",
            exports_file=f"{HOSTILE}/exports.conf",
            ganesha_config=f"{HOSTILE}/ganesha.conf",
            ganesha_pidfile=f"{HOSTILE}/pid",
        ),
        smb=SmbHost(smb_conf=f"{HOSTILE}/smb.conf", include_file=f"{HOSTILE}/vmshare.conf"),
    )
    text = privileged.sudoers(settings, user.pw_name)
    sudoers_file = Path("/etc/sudoers.d") / f"vmshare-test-{user.pw_name}"
    candidate = Path(f"/tmp/{sudoers_file.name}")
    candidate.write_text(text)
    assert subprocess.run(["visudo", "-cf", str(candidate)], capture_output=True).returncode == 0
    shutil.move(candidate, sudoers_file)
    sudoers_file.chmod(0o440)
    try:
        listed = privileged.commands(settings)
        for command in listed:
            argv = [program(command.argv[0]), *command.argv[1:]]
            if command.pattern is not None:
                argv[-1] = "vmshare-0123456789abcdef"
            assert allowed(user.pw_name, argv), argv
        conf = f"{HOSTILE}/smb.conf"
        near = HOSTILE.replace("*", "X")  # what an unescaped wildcard would let through
        refused = [
            [program("smbcontrol"), "-s", conf, "smbd", "close-share", "vmshare-0123"],
            [program("smbcontrol"), "-s", conf, "smbd", "close-share", "other"],
            [program("smbcontrol"), "-s", f"{near}/smb.conf", "smbd", "reload-config"],
            [program("smbcontrol"), "-s", conf, "smbd", "reload-config", "extra"],
            [program("tee"), f"{near}/.smb.conf.vmshare-new"],
            [program("tee"), f"{HOSTILE}/.smb.conf.vmshare-new", "/etc/passwd"],
            [program("rm"), "-f", "--", conf],  # a server's main config is never removed
            [program("userdel"), "root"],
        ]
        for argv in refused:
            assert not allowed(user.pw_name, argv), argv
    finally:
        sudoers_file.unlink(missing_ok=True)
