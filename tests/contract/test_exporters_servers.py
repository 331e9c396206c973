"""nfs-ganesha and Samba: the whole exporter contract, the file and a real server.

Each class starts its own server on loopback (not the session's, which the CLI tests use), so
the contract sees only its own entries. Samba is checked from the host with smbclient; ganesha
through an NFSv4 mount in the test guest (this host's kernel has no NFS client).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.contract.exporter import ExporterBed, ExporterFileContract, ExporterServerContract
from tests.contract.formats import ganesha_export_paths, samba_share_paths
from tests.testbed.fixtures import VM, Guest
from tests.testbed.servers import Ganesha, Samba
from vmshare.protocols.nfs import GaneshaExporter, NfsExport
from vmshare.protocols.smb import SambaExporter, SmbShare
from vmshare.secret_value import Secret
from vmshare.spec import NfsHost, SmbHost

pytestmark = pytest.mark.integration
OWNER = 33  # www-data: a named, non-root owner every export maps guest users to


@pytest.fixture
def workdir():
    """Exported folders must be reachable by the servers' non-root owner."""
    base = Path("/var/tmp/vmshare-testbed") / VM
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="exporters-", dir=base))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def ganesha(tmp_path_factory):
    with Ganesha.start(tmp_path_factory.mktemp("contract-ganesha")) as server:
        yield server


class TestGaneshaExporter(ExporterFileContract, ExporterServerContract):
    @pytest.fixture
    def exporter_bed(self, ganesha: Ganesha, guest: Guest, workdir):
        settings = NfsHost(
            exporter="ganesha",
            port=ganesha.port,
            exports_file=str(ganesha.exports_path),
            ganesha_config=str(ganesha.config_path),
            ganesha_pidfile=str(ganesha.pidfile),
        )
        exporter = GaneshaExporter(settings)

        def add(entry_id: str, path: str, readonly: bool) -> None:
            exporter.export(NfsExport(entry_id, path, "127.0.0.1", readonly, OWNER, OWNER))

        def served(entry_id: str) -> list[str] | None:
            probe = "/mnt/contract-probe"
            assert guest.run("mkdir", "-p", probe)[0] == 0
            options = f"vers=4.1,port={ganesha.port}"
            source = f"10.0.2.2:{settings.pseudo_root}/{entry_id}"
            code, _, _ = guest.run("mount", "-t", "nfs4", "-o", options, source, probe)
            if code != 0:
                return None
            try:
                code, out, err = guest.run("ls", "-A", probe)
                assert code == 0, err
                return out.decode().splitlines()
            finally:
                guest.run("umount", probe)

        return ExporterBed(
            exporter=exporter,
            add=add,
            remove=exporter.unexport,
            parse=ganesha_export_paths,
            files=[ganesha.exports_path, ganesha.config_path],
            workdir=workdir,
            served=served,
        )


@pytest.fixture(scope="module")
def samba(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract-samba")
    account = ("vs-ct-" + re.sub(r"[^a-z0-9_-]", "-", VM.lower()))[:31]
    subprocess.run(["userdel", account], capture_output=True, check=False)  # a killed run's
    with Samba.start(root / "samba") as server:
        settings = SmbHost(
            exporter="samba",
            port=server.port,
            smb_conf=str(server.config_path),
            include_file=str(root / "samba" / "vmshare.conf"),
            account=account,
        )
        password = secrets.token_urlsafe(24)
        created = SambaExporter(settings).ensure_account(Secret(password))
        try:
            yield server, settings, password
        finally:
            SambaExporter(settings).remove_account(**created)


_SMBCLIENT_ENTRY = re.compile(r"^  (.*?)\s+[A-Z]+\s+\d+\s+\w{3} \w{3} +\d+ [\d:]+ \d{4}$")


class TestSambaExporter(ExporterFileContract, ExporterServerContract):
    @pytest.fixture
    def exporter_bed(self, samba, workdir):
        server, settings, password = samba
        exporter = SambaExporter(settings)

        def add(entry_id: str, path: str, readonly: bool) -> None:
            share = SmbShare(
                entry_id,
                path,
                "127.0.0.1",
                readonly,
                settings.account,
                "www-data",
                "www-data",
                True,
            )
            exporter.share(share)

        def served(entry_id: str) -> list[str] | None:
            argv = ["smbclient", f"//127.0.0.1/{entry_id}", "-p", str(server.port)]
            argv += ["-U", settings.account, "-m", "SMB3", "--client-protection=encrypt"]
            env = {**os.environ, "PASSWD": password}
            proc = subprocess.run(
                [*argv, "-c", "ls"], capture_output=True, text=True, env=env, timeout=60
            )
            if proc.returncode != 0:
                return None
            names = [
                m[1] for line in proc.stdout.splitlines() if (m := _SMBCLIENT_ENTRY.match(line))
            ]
            return sorted(n for n in names if n not in (".", ".."))

        return ExporterBed(
            exporter=exporter,
            add=add,
            remove=exporter.unshare,
            parse=samba_share_paths,
            files=[exporter.path, server.config_path],
            workdir=workdir,
            served=served,
        )
