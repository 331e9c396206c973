"""A Hyper-V share for real, short of Windows: vmshare's PowerShell goes to the Hyper-V host
stand-in (parsed, allow-listed, modelled), whose New-SmbShare and New-LocalUser also make the
share and the account on the test bed's real Samba; the real QEMU guest, reached over ssh as a
Linux Hyper-V guest is, mounts it with mount.cifs (SMB 3.1.1, sealed). Files cross both ways,
read-only holds at the server, and removal leaves nothing, the host tree byte-identical.

vmshare reaches the stand-in as it reaches a real host: real pywinrm over the test bed's
loopback WS-Man endpoint (NTLM, messages encrypted), the password by reference.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.testbed.fixtures import (
    OWNER,
    VM,
    FileServers,
    SshGuest,
    exported,
    make_tree,
    tree_digest,
)
from tests.testbed.hyperv import HyperVHost, Vm
from tests.testbed.wsman.fixture import PASSWORD_ENV, WsmanBed

from vmshare import core
from vmshare.backends.hyperv.settings import HypervVm
from vmshare.guest.ssh import SshChannel
from vmshare.protocols import mount_tag
from vmshare.spec import SmbHost, parse_spec
from vmshare.state import StateStore

pytestmark = pytest.mark.integration

ACCOUNT = re.sub(r"[^a-z0-9_-]", "-", ("vh-" + VM).lower())[:20]


@dataclass
class Bed:
    standin: HyperVHost
    store: StateStore
    channel: SshChannel
    guest_name: str
    port: int
    root: Path  # where the stand-in keeps C:\
    winrm: HypervVm  # the endpoint's settings: URL, user, password reference

    def spec(self, source: str, target: str, *extra: str) -> str:
        access = self.channel.access
        return (
            f'[vm."{self.guest_name}"]\nbackend = "hyperv"\nsmb_account = "{ACCOUNT}"\n'
            f"winrm = \"{self.winrm.winrm}\"\nuser = '{self.winrm.user}'\n"
            f'password_env = "{PASSWORD_ENV}"\n'
            f'[vm."{self.guest_name}".guest]\nchannel = "ssh"\nssh_host = "{access.ssh_host}"\n'
            f'ssh_port = {access.ssh_port}\nssh_key = "{access.ssh_key}"\n'
            f'ssh_known_hosts = "{access.ssh_known_hosts}"\n'
            f'[[share]]\nsource = "{source.replace(chr(92), chr(92) * 2)}"\n'
            f'vm = "{self.guest_name}"\ntarget = "{target}"\n'
            f'mount_options = ["port={self.port}"]\n' + "".join(f"{e}\n" for e in extra)
        )

    def sh(self, script: str, *args: str) -> tuple[int, bytes, bytes]:
        result = self.channel.run(["sh", "-c", script, "sh", *args])
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def bed(ssh_guest: SshGuest, servers: FileServers, open_tmp: Path, tmp_path, wsman: WsmanBed):
    subprocess.run(["userdel", ACCOUNT], capture_output=True, check=False)  # a killed run's
    table = tomllib.loads(servers.host_config.read_text())["smb"]
    samba = SmbHost(**{**table, "account": ACCOUNT})
    root = open_tmp / "windows"
    standin = HyperVHost(
        root,
        samba=samba,
        client="127.0.0.1",  # QEMU user networking: the guest reaches Samba from loopback
        interfaces={"vEthernet (Default Switch)": "10.0.2.2"},
    )
    standin.vms[ssh_guest.name] = Vm(ssh_guest.name, addresses=["10.0.2.15"])
    wsman.handler = standin.handle
    yield Bed(
        standin,
        StateStore(tmp_path / "state"),
        SshChannel(ssh_guest.access),
        ssh_guest.name,
        samba.port or 445,
        root,
        wsman.settings(),
    )
    for record in list(StateStore(tmp_path / "state").load().shares):
        core.remove_share(record, StateStore(tmp_path / "state"))


def test_files_round_trip_and_remove_leaves_nothing(bed: Bed, servers: FileServers):
    tree = make_tree(bed.root / "C" / "it" / "src", OWNER)
    before = tree_digest(tree)
    target = "/mnt/hyperv-src"
    tag = mount_tag(f"{bed.guest_name}:{target}")
    spec = parse_spec(bed.spec("C:\\it\\src", target))

    core.apply_shares(spec, "cli", bed.store)
    assert bed.standin.shares[tag]["access"] == {ACCOUNT: "Full"}
    assert bed.standin.acls["c:\\it\\src"] == {ACCOUNT: "Modify"}
    assert tag in exported(servers, "smb")
    code, out, _ = bed.sh('cat "$1/hello.txt"', target)
    assert (code, out) == (0, b"hello from the host\n")
    code, out, _ = bed.sh('grep " $1 " /proc/mounts', target)
    assert code == 0 and b"cifs" in out and b"seal" in out and b"vers=3.1.1" in out
    assert bed.sh('printf guest > "$1/from-guest.txt"', target)[0] == 0
    assert (tree / "from-guest.txt").read_bytes() == b"guest"
    assert bed.sh('rm "$1/from-guest.txt"', target)[0] == 0
    assert core.plan_shares(spec, "cli", bed.store).plan.steps == []

    core.remove_share(f"{bed.guest_name}:{target}", bed.store)
    assert tag not in exported(servers, "smb")
    assert bed.standin.shares == {} and bed.standin.users == {}
    assert bed.standin.acls["c:\\it\\src"] == {}
    assert bed.sh('grep -q " $1 " /proc/mounts', target)[0] != 0
    assert bed.sh('test -e "$1"', f"/etc/vmshare/{tag}.cred")[0] != 0
    assert subprocess.run(["id", ACCOUNT], capture_output=True).returncode != 0
    assert tree_digest(tree) == before


def test_read_only_holds_at_the_server(bed: Bed, servers: FileServers):
    tree = make_tree(bed.root / "C" / "it" / "ro", OWNER)
    before = tree_digest(tree)
    target = "/mnt/hyperv-ro"
    tag = mount_tag(f"{bed.guest_name}:{target}")
    core.apply_shares(
        parse_spec(bed.spec("C:\\it\\ro", target, "readonly = true")), "cli", bed.store
    )
    assert bed.standin.shares[tag]["access"] == {ACCOUNT: "Read"}
    assert bed.sh('cat "$1/hello.txt"', target)[1] == b"hello from the host\n"
    # the guest mounts it again read-write by hand, with vmshare's own credentials: the server
    # still refuses the write
    mount = (
        'mkdir -p /mnt/rw-try && mount.cifs "//10.0.2.2/$1" /mnt/rw-try '
        '-o "rw,vers=3.1.1,seal,credentials=/etc/vmshare/$1.cred,port=$2"'
    )
    code, _, err = bed.sh(mount, tag, str(bed.port))
    assert code == 0, err
    try:
        assert bed.sh("printf x > /mnt/rw-try/new.txt")[0] != 0
    finally:
        bed.sh("umount /mnt/rw-try")
    assert not (tree / "new.txt").exists()
    core.remove_share(f"{bed.guest_name}:{target}", bed.store)
    assert tag not in exported(servers, "smb")
    assert tree_digest(tree) == before
