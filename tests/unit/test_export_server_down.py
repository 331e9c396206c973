"""A file server that does not run, told apart from one that runs and refused (issue 14).

Taking an entry out of a stopped server's config stands (nothing serves it, the next start reads
the edited file): a rollback then finishes. Adding one fails at once, names the server and how
to start it, and leaves the files as they were. A running server that refuses a reload still
fails both, with the file put back. Real processes and real smbcontrol, no server mocks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmshare.errors import GuestError, HostCommandError, ServerNotRunning
from vmshare.formats import ownedblock
from vmshare.guest.channel import GuestResult
from vmshare.guest.linux import LinuxGuest, live_mount_options, unreachable_server
from vmshare.host import liveness
from vmshare.protocols import nfs, smb
from vmshare.protocols.exportfile import OwnedConfigFile
from vmshare.spec import NfsHost, SmbHost

# ------------------------------------------------------------------------ the probes


@pytest.fixture
def ganesha_named(tmp_path) -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose program is ganesha.nfsd (sleep under that name), deaf to SIGHUP
    so that a reload's signal leaves it running."""
    program = tmp_path / "bin" / "ganesha.nfsd"
    program.parent.mkdir()
    shutil.copy("/bin/sleep", program)
    proc = subprocess.Popen(
        [str(program), "300"], preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)
    )
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_pid_file_is_live_only_for_a_process_of_its_program(
    tmp_path, ganesha_named, other_process
):
    pidfile = tmp_path / "ganesha.pid"
    assert liveness.pidfile_process(pidfile, "ganesha.nfsd") == liveness.Liveness(
        False, f"no pid file {pidfile}"
    )
    pidfile.write_text("")
    assert liveness.pidfile_process(pidfile, "ganesha.nfsd").running is False
    pidfile.write_text(f"{_dead_pid()}\n")
    assert "no process" in liveness.pidfile_process(pidfile, "ganesha.nfsd").detail
    pidfile.write_text(f"{other_process.pid}\n")  # a stale file whose pid was reused
    found = liveness.pidfile_process(pidfile, "ganesha.nfsd")
    assert found.running is False and "which is not ganesha.nfsd" in found.detail
    pidfile.write_text(f"{ganesha_named.pid}\n")
    assert liveness.pidfile_process(pidfile, "ganesha.nfsd").running is True
    # a pid file vmshare cannot read: it cannot tell, which counts as running
    assert liveness.pidfile_process(tmp_path, "ganesha.nfsd").running is None


def test_kernel_nfsd_runs_when_it_has_threads(tmp_path):
    assert liveness.kernel_nfsd().running is False  # this kernel has no NFS server
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    assert liveness.kernel_nfsd(proc).running is False
    (proc / "77").mkdir()
    (proc / "77" / "comm").write_text("nfsd\n")  # kernel threads, nfsd filesystem unmounted
    assert liveness.kernel_nfsd(proc).running is True
    (proc / "fs" / "nfsd").mkdir(parents=True)
    (proc / "fs" / "nfsd" / "threads").write_text("0\n")  # the nfsd filesystem decides
    assert liveness.kernel_nfsd(proc) == liveness.Liveness(
        False, f"{proc}/fs/nfsd/threads is 0: nfsd runs no threads"
    )
    (proc / "fs" / "nfsd" / "threads").write_text("8\n")
    assert liveness.kernel_nfsd(proc).running is True


def _smb_conf(tmp_path: Path) -> Path:
    """A Samba config whose pid, lock and state folders are the test's own: no smbd runs."""
    lines = ["[global]"]
    for key, folder in [
        ("pid directory", "pid"),
        ("lock directory", "lock"),
        ("state directory", "state"),
        ("cache directory", "cache"),
        ("private dir", "private"),
        ("ncalrpc dir", "ncalrpc"),
    ]:
        (tmp_path / folder).mkdir()
        lines.append(f"\t{key} = {tmp_path / folder}")
    conf = tmp_path / "smb.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def test_smbcontrol_tells_no_smbd_from_a_config_it_cannot_load(tmp_path):
    conf = _smb_conf(tmp_path)
    argv = ["smbcontrol", "-s", str(conf), "smbd", "reload-config"]
    stopped = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert stopped.returncode != 0 and liveness.smbcontrol_found_no_smbd(stopped.stderr)
    argv[2] = str(tmp_path / "missing.conf")  # it then looks elsewhere: no claim about ours
    unloaded = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert unloaded.returncode != 0 and not liveness.smbcontrol_found_no_smbd(unloaded.stderr)
    samba = smb.SambaExporter(SmbHost(smb_conf=str(conf)))
    assert samba.liveness().running is False


# ------------------------------------------------------------- the exporters' reloads


def _ganesha(tmp_path: Path) -> nfs.GaneshaExporter:
    main = tmp_path / "ganesha.conf"
    main.write_text('NFS_CORE_PARAM { Protocols = 4; }\n%include "vmshare-exports.conf"\n')
    settings = NfsHost(
        exporter="ganesha",
        exports_file=str(tmp_path / "vmshare-exports.conf"),
        ganesha_config=str(main),
        ganesha_pidfile=str(tmp_path / "ganesha.pid"),
    )
    return nfs.GaneshaExporter(settings)


EXPORT = nfs.NfsExport("vmshare-a", "/srv/a", "127.0.0.1", False, 33, 33)


def test_an_export_to_a_stopped_ganesha_fails_at_once_and_changes_nothing(tmp_path):
    ganesha = _ganesha(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ServerNotRunning) as info:
        ganesha.export(EXPORT)
    assert info.value.message == f"nfs-ganesha is not running (no pid file {tmp_path}/ganesha.pid)"
    assert "systemctl start nfs-ganesha" in str(info.value.hint)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_stale_ganesha_pid_file_is_never_signalled(tmp_path, other_process):
    ganesha = _ganesha(tmp_path)
    (tmp_path / "ganesha.pid").write_text(f"{other_process.pid}\n")
    with pytest.raises(ServerNotRunning, match=r"which is not ganesha\.nfsd"):
        ganesha.reload()
    assert other_process.poll() is None  # a SIGHUP would have ended sleep


def test_an_export_removed_from_a_stopped_ganesha_stays_removed(tmp_path, ganesha_named):
    ganesha = _ganesha(tmp_path)
    (tmp_path / "ganesha.pid").write_text(f"{ganesha_named.pid}\n")
    ganesha.export(EXPORT)  # the reload signals the live "ganesha"
    assert list(ganesha.entries()) == ["vmshare-a"]
    (tmp_path / "ganesha.pid").unlink()  # ganesha stopped (it removes its pid file)
    ganesha.unexport("vmshare-a")
    assert ganesha.entries() == {}


def test_a_samba_share_on_a_stopped_smbd_fails_and_its_removal_stands(tmp_path):
    conf = _smb_conf(tmp_path)
    original = conf.read_text()
    samba = smb.SambaExporter(SmbHost(smb_conf=str(conf), include_file=str(tmp_path / "vm.conf")))
    share = smb.SmbShare("vmshare-a", "/srv/a", "127.0.0.1", False, "vmshare", "dev", "dev", True)
    with pytest.raises(ServerNotRunning) as info:
        samba.share(share)
    assert info.value.message == f"Samba is not running: smbcontrol finds no smbd for {conf}"
    assert "systemctl start smbd" in str(info.value.hint)
    assert not (tmp_path / "vm.conf").exists() and conf.read_text() == original
    # made while smbd ran, then smbd stopped: the removal needs no reload
    (tmp_path / "vm.conf").write_text(ownedblock.with_entry("", "vmshare-a", "[vmshare-a]"))
    conf.write_text(ownedblock.with_entry(original, "include", f"include = {tmp_path}/vm.conf"))
    samba.unshare("vmshare-a")
    assert conf.read_text() == original and not (tmp_path / "vm.conf").exists()


@pytest.fixture
def exportfs(tmp_path, monkeypatch) -> Path:
    """A stand-in exportfs first on PATH that records its arguments: no kernel NFS server can
    run here (tests/testbed), and this kernel runs no nfsd threads."""
    folder = tmp_path / "bin"
    folder.mkdir()
    calls = tmp_path / "exportfs.calls"
    (folder / "exportfs").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (folder / "exportfs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    return calls


def test_the_kernel_server_not_running_fails_an_export_and_lets_a_removal_stand(tmp_path, exportfs):
    exports = tmp_path / "exports.d" / "vmshare.exports"
    exports.parent.mkdir()
    kernel = nfs.KernelNfsExporter(NfsHost(exporter="kernel", exports_file=str(exports)))
    with pytest.raises(ServerNotRunning) as info:
        kernel.export(EXPORT)
    assert info.value.message == "the kernel NFS server is not running (no nfsd threads run)"
    assert "systemctl start nfs-server" in str(info.value.hint)
    assert sorted(p.name for p in exports.parent.iterdir()) == []
    # exportfs -ra synced the table with the file, and again once the file was put back
    assert exportfs.read_text() == "-ra\n-ra\n"
    exports.write_text(ownedblock.with_entry("", "vmshare-a", kernel.render(EXPORT)))
    kernel.unexport("vmshare-a")
    assert kernel.entries() == {} and exportfs.read_text() == "-ra\n" * 3


# ------------------------------------------------------------ the decision in edit()


class Scripted(OwnedConfigFile):
    """A config file whose server answers each reload with the next scripted outcome."""

    def __init__(self, path: Path, *outcomes: Exception | None) -> None:
        self._path, self.outcomes, self.reloads = path, list(outcomes), 0

    @property
    def path(self) -> Path:
        return self._path

    def reload(self) -> None:
        self.reloads += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


DOWN = ServerNotRunning("the server is not running")
REFUSED = HostCommandError("the server refused its config")


def _with_entry(path: Path) -> str:
    path.write_text(ownedblock.with_entry("# the user's\n", "vmshare-a", "entry a"))
    return path.read_text()


def _remove(text: str) -> str:
    return ownedblock.without_entry(text, "vmshare-a")


def test_a_removal_stands_when_the_server_does_not_run(tmp_path):
    config = Scripted(tmp_path / "exports", DOWN)
    _with_entry(config.path)
    assert config.edit(_remove, removing=True) is True
    assert config.entries() == {} and config.reloads == 1


def test_a_removal_a_running_server_refuses_is_put_back_and_fails(tmp_path):
    config = Scripted(tmp_path / "exports", REFUSED, None)
    before = _with_entry(config.path)
    with pytest.raises(HostCommandError, match="refused"):
        config.edit(_remove, removing=True)
    assert config.path.read_text() == before and config.reloads == 2  # reloaded as it was


def test_an_addition_on_a_stopped_server_is_put_back_and_fails(tmp_path):
    config = Scripted(tmp_path / "exports", DOWN, DOWN)
    with pytest.raises(ServerNotRunning):
        config.edit(lambda text: ownedblock.with_entry(text, "vmshare-a", "entry a"))
    assert not config.path.exists()  # the file it created is gone again, no backup either
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the guest's mount


def test_vmshare_s_own_nfs_mount_tries_once_unless_the_user_set_retry():
    assert live_mount_options("nfs4", ["rw", "vers=4.2"]) == ["rw", "vers=4.2", "retry=0"]
    assert live_mount_options("nfs", ["rw", "retry=5"]) == ["rw", "retry=5"]
    assert live_mount_options("cifs", ["rw"]) == ["rw"]


@pytest.mark.parametrize(
    ("error", "source", "fstype", "options", "cause"),
    [
        (
            "mount: mounting 10.0.2.2:/vmshare/x on /mnt/x failed: Connection refused",
            "10.0.2.2:/vmshare/x",
            "nfs4",
            ["rw", "port=37211"],
            "connection refused at 10.0.2.2:37211: the NFS server is not answering",
        ),
        (
            "mount error(111): could not connect to 10.0.2.2Unable to find suitable address.",
            "//10.0.2.2/vmshare-a",
            "cifs",
            ["rw"],
            "connection refused at 10.0.2.2:445: the SMB server is not answering",
        ),
        (
            "mount.nfs: Connection timed out",
            "[fd00::1]:/srv",
            "nfs",
            [],
            "connection timed out at [fd00::1]:2049: the NFS server is not answering",
        ),
        ("mount.nfs4: access denied by server", "h:/x", "nfs4", [], None),
        ("mount: Connection refused", "tag", "virtiofs", [], None),
    ],
)
def test_a_mount_error_names_a_server_the_guest_cannot_reach(error, source, fstype, options, cause):
    assert unreachable_server(error, source, fstype, options) == cause


class RefusingChannel:
    """A guest whose every mount is refused, as mount.nfs says it."""

    name = "refusing"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv, *, input=None, timeout=60):
        self.calls.append(list(argv))
        return GuestResult(32, b"", b"mount.nfs4: Connection refused\n")


def test_a_refused_nfs_mount_skips_the_version_fallbacks_and_names_the_cause(monkeypatch):
    monkeypatch.setattr("vmshare.guest.linux.MOUNT_RETRY_SECONDS", 0.0)
    channel = RefusingChannel()
    guest = LinuxGuest(channel, "devvm")
    options = ["rw", "vers=4.2", "port=2050"]
    fallbacks = nfs.version_fallbacks(options)
    with pytest.raises(GuestError) as info:
        guest.mount("10.0.2.2:/vmshare/a", "/mnt/a", "nfs4", options, fallbacks)
    assert info.value.message == (
        "mounting /mnt/a in VM 'devvm' failed: connection refused at 10.0.2.2:2050: the NFS "
        "server is not answering (retried for 0 s, the mount retry bound)"
    )
    assert len(channel.calls) == 1  # 4.1 and NFSv3 cannot help a server that is not there
    assert "retry=0" in channel.calls[0][-3]


# ------------------------------------------------------------------------ doctor


def test_doctor_says_which_configured_server_does_not_run(tmp_path, monkeypatch, ganesha_named):
    from vmshare import doctor

    conf = _smb_conf(tmp_path)
    pidfile = tmp_path / "ganesha.pid"
    host = tmp_path / "host.toml"
    host.write_text(
        f'[nfs]\nexporter = "ganesha"\nganesha_pidfile = "{pidfile}"\n[smb]\nsmb_conf = "{conf}"\n'
    )
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(host))
    checks = {c.name: c for c in doctor._file_servers()}
    nfs_row, smb_row = checks["nfs exporter"], checks["smb exporter"]
    assert nfs_row.status == "warn" and nfs_row.detail.endswith(
        f"nfs-ganesha is not running (no pid file {pidfile}): --protocol nfs will fail"
    )
    assert "systemctl start nfs-ganesha" in str(nfs_row.hint)
    assert smb_row.status == "warn" and smb_row.detail.endswith(
        f"Samba is not running: smbcontrol finds no smbd for {conf}: --protocol smb will fail"
    )
    assert "systemctl start smbd" in str(smb_row.hint)
    pidfile.write_text(f"{ganesha_named.pid}\n")  # ganesha runs: the row is as before
    nfs_row = {c.name: c for c in doctor._file_servers()}["nfs exporter"]
    assert nfs_row.status == "ok" and "not running" not in nfs_row.detail
