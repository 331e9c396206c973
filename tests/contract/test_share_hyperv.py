"""The share contract on Hyper-V: the real CLI, in a subprocess, reaches the Hyper-V host
stand-in over the test bed's loopback WS-Man endpoint (real pywinrm, NTLM, the password by
reference); the stand-in's New-SmbShare and New-LocalUser make the share and the account on the
test bed's real Samba, which the ssh test guest mounts with mount.cifs, as a Linux guest of a
Hyper-V host does. The host trees are the stand-in's C:\\ folders, named so on the command line.

The stand-in's Samba listens on a port of its own, not 445: each share says so in its mount
options (``-o port=N``), the one difference from a real Windows host."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.contract.share import (
    HOSTILE_NAMES,
    ShareContract,
    ShareTestbed,
    network_expectations,
)
from tests.testbed.faults import Fault, guest_frozen
from tests.testbed.fixtures import (
    OWNER,
    VM,
    FileServers,
    Guest,
    SshGuest,
    Vmshare,
    exported,
)
from tests.testbed.hyperv import HyperVHost, Vm
from tests.testbed.wsman.fixture import PASSWORD_ENV, WsmanBed
from tests.testbed.wsman.server import WsmanEndpoint
from vmshare.spec import SmbHost

pytestmark = pytest.mark.integration

ACCOUNT = re.sub(r"[^a-z0-9_-]", "-", ("vc-" + VM).lower())[:20]
HV_VM = "hvvm"  # the stand-in's VM: the ssh test guest


def host_table(vm: str, bed: WsmanBed, guest: SshGuest) -> str:
    winrm = bed.settings()
    access = guest.access
    return (
        f'[vm.{vm}]\nbackend = "hyperv"\nwinrm = "{winrm.winrm}"\n'
        f"user = '{winrm.user}'\npassword_env = \"{PASSWORD_ENV}\"\n"
        f'smb_account = "{ACCOUNT}"\n'
        f'[vm.{vm}.guest]\nchannel = "ssh"\nssh_host = "{access.ssh_host}"\n'
        f'ssh_port = {access.ssh_port}\nssh_key = "{access.ssh_key}"\n'
        f'ssh_known_hosts = "{access.ssh_known_hosts}"\n'
    )


def faults(endpoint: WsmanEndpoint, standin: HyperVHost, guest: SshGuest) -> list[Fault]:
    """What a Hyper-V add can meet mid-way: the host's WinRM service stopped, or silent, or
    answering with an error; the guest frozen. Each lands as the SMB share is about to be made
    (the folder's account made already: there is something to roll back), or as the guest is
    about to mount it."""
    url = re.escape(endpoint.url)
    return [
        Fault(
            "WinRM endpoint stopped",
            "host.smb_share",
            inject=endpoint.halt,
            restore=endpoint.restart,
            error=f"nothing accepts connections at the WinRM endpoint {url}",
            bound=30,
        ),
        Fault(
            "WinRM endpoint never answers",
            "host.smb_share",
            inject=endpoint.hold,
            restore=endpoint.release,
            error=f"the WinRM endpoint {url} did not answer within 30 s",
            bound=60,
        ),
        Fault(
            "WinRM call returns an error stream",
            "host.smb_share",
            inject=lambda: standin.fail_next(
                "New-SmbShare",
                "The Server service is not started.",
                "NotSpecified: (MSFT_SMBShare:ROOT/Microsoft/Windows/SMB/MSFT_SMBShare) "
                "[New-SmbShare], CimException",
                "Windows System Error 2114,New-SmbShare",
            ),
            restore=standin.failures.clear,
            # PowerShell's own message, and nothing of the CLIXML or of the record's other lines
            error=r"on the Windows host: New-SmbShare : The Server service is not started\.;",
            bound=30,
        ),
        guest_frozen(
            guest.dom,
            "guest.",
            r"ssh to 127\.0\.0\.1 port \d+ failed: Connection timed out",
            point="intent",
            bound=60,
        ),
    ]


class TestHypervSmb(ShareContract):
    @pytest.fixture
    def testbed(
        self,
        wsman: WsmanBed,  # before vmshare: its endpoint outlives the removal of leftovers
        ssh_guest: SshGuest,
        servers: FileServers,
        vmshare: Vmshare,
        open_tmp: Path,
    ) -> ShareTestbed:
        subprocess.run(["userdel", ACCOUNT], capture_output=True, check=False)  # a killed run's
        table = tomllib.loads(servers.host_config.read_text())["smb"]
        samba = SmbHost(**{**table, "account": ACCOUNT})
        root = open_tmp / "windows"  # the stand-in's C:\ is root/C
        standin = HyperVHost(
            root,
            samba=samba,
            client="127.0.0.1",  # QEMU user networking: the guest reaches Samba from loopback
            interfaces={"vEthernet (Default Switch)": "10.0.2.2"},
        )
        standin.vms[HV_VM] = Vm(HV_VM, addresses=["10.0.2.15"])
        wsman.handler = standin.handle
        config = open_tmp / "host.toml"
        config.write_text(host_table(HV_VM, wsman, ssh_guest))
        vmshare.env["VMSHARE_HOST_CONFIG"] = str(config)
        trees = root / "C" / "trees"
        trees.mkdir(parents=True)
        port = samba.port or 445

        def windows_path(path: Path) -> str:
            return "C:\\" + "\\".join(path.relative_to(root / "C").parts)

        def exports() -> dict[str, str]:
            """The stand-in's SMB shares, each with whether Samba serves it too."""
            served = exported(servers, "smb")
            found = {
                name: f"{share['path']} {share['access']} samba={name in served}"
                for name, share in standin.shares.items()
            }
            return found | {name: "samba only" for name in served if name not in found}

        def vm_config() -> object:
            """The stand-in's VM, and its accounts and NTFS rights (an emptied ACL is none)."""
            return (
                dataclasses.asdict(standin.vms[HV_VM]),
                sorted(standin.users),
                {path: rules for path, rules in standin.acls.items() if rules},
            )

        return ShareTestbed(
            vm=HV_VM,
            guest=Guest(ssh_guest.dom, ssh_guest.name, 0.0),
            cli=vmshare,
            protocol="smb",
            backend=None,  # the VM's settings come from host.toml
            tmp=trees,
            owner=OWNER,
            source_of=windows_path,
            add_args=["-o", f"port={port}"],
            share_lines=[f'mount_options = ["port={port}"]'],
            devices=lambda live: {},  # Hyper-V has no share device
            exports=exports,
            vm_config=vm_config,
            # the folder and the share are the Windows host's, asked of it over WinRM
            status_checks={"host": "ok", "export": "ok", "mount": "ok", "probe": "ok"},
            faults=faults(wsman.http, standin, ssh_guest),
            **network_expectations(
                "smb",
                # a Windows file name cannot hold '"'; two spaces in a row it can (the
                # stand-in's Samba mirror reaches such a folder through a symlink)
                refused_names={name for name in HOSTILE_NAMES if '"' in name},
                rollback_marker="↶ remove the SMB share",  # the Windows host's
            ),
        )
