"""Throwaway NFSv4 (nfs-ganesha) and SMB3 (Samba) servers on 127.0.0.1 for vmshare's tests.

The test guest reaches them at 10.0.2.2 through QEMU user networking, and the connections
arrive from 127.0.0.1 (slirp NAT). Each server lives in its own workdir, on its own port, as a
child process in its own process group, so several can run at once and stop() leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
# ganesha logs this at the end of a SIGHUP reload (also when the exports did not change).
GANESHA_RELOADED = "Reread exports complete"
GANESHA_REJECTED = "Error while parsing new configuration file"
GANESHA_PROBLEMS = (" :CRIT :", " :MAJ :", " :FATAL :")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _ganesha_string(value: Path | str) -> str:
    """A ganesha.conf string literal: in double quotes, which take \\" and \\\\ escapes."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"no line breaks in a ganesha.conf string: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Server:
    """A daemon run in the foreground as a child process, in a process group of its own."""

    name = "server"

    def __init__(self, workdir: Path, port: int, log_path: Path) -> None:
        self.workdir = workdir
        self.port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._argv: list[str] = []

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self, argv: list[str]) -> None:
        self._argv = argv
        if port_open(self.port):  # else the wait below would take another server for ours
            raise RuntimeError(f"{HOST}:{self.port} is already in use")
        with open(self.workdir / f"{self.name}.stderr", "ab") as stderr:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                cwd=self.workdir,
                start_new_session=True,
            )
        try:
            self._wait_for_port()
        except BaseException:
            self.stop()
            raise

    def restart(self) -> None:
        """Stopped (if it runs) and started again as before: a fault test's server is back."""
        self.stop()
        self._spawn(self._argv)

    def _wait_for_port(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(self.port):
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(f"{self.name} exited {code} at start{self.log_tail()}")
            if time.monotonic() > deadline:
                message = f"{self.name} does not listen on {HOST}:{self.port} after"
                raise RuntimeError(f"{message} {START_TIMEOUT}s{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM the daemon's process group(s), SIGKILL after STOP_TIMEOUT; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        groups = {proc.pid} | {pgid for pgid, argv in _processes() if self._is_helper(argv)}
        for pgid in groups - {proc.pid}:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(pgid in groups for pgid, _argv in _processes()):
            if time.monotonic() > deadline:
                for pgid in groups:
                    _signal_group(pgid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT
            time.sleep(0.05)

    def _is_helper(self, argv: list[str]) -> bool:
        """Whether argv is a helper the daemon started in a session of its own."""
        return False

    def log_tail(self, lines: int = 25) -> str:
        parts = []
        for path in (self.log_path, self.workdir / f"{self.name}.stderr"):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text:
                parts.append(f"\n--- {path}:\n" + "\n".join(text))
        return "".join(parts)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _processes() -> Iterator[tuple[int, list[str]]]:
    """(process group, argv) of every live (not zombie) process."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            yield int(fields[2]), argv


class Ganesha(_Server):
    """nfs-ganesha serving NFSv4 only, graceless; its EXPORT blocks live in exports_path."""

    name = "ganesha"

    def __init__(self, workdir: Path, port: int) -> None:
        super().__init__(workdir, port, workdir / "ganesha.log")
        self.config_path = workdir / "ganesha.conf"
        self.exports_path = workdir / "vmshare-exports.conf"
        self.pidfile = workdir / "ganesha.pid"

    @classmethod
    def start(cls, workdir: Path, port: int | None = None) -> Ganesha:
        workdir = Path(workdir).absolute()
        (workdir / "recovery").mkdir(parents=True, exist_ok=True)
        server = cls(workdir, port or free_port())
        server.exports_path.write_text("")
        server.config_path.write_text(server.render_config())
        argv = ["ganesha.nfsd", "-F", "-f", str(server.config_path)]
        server._spawn([*argv, "-L", str(server.log_path), "-p", str(server.pidfile)])
        return server

    def render_config(self) -> str:
        # Graceless: no 90 s grace period after start. Numeric owners: the guest has no
        # idmapper, so "root@localdomain" would show up as nobody. %include takes a path
        # relative to this file: ganesha 4.3 cannot include a path with a space, even quoted.
        return f"""\
NFS_CORE_PARAM {{
    Protocols = 4;
    NFS_Port = {self.port};
    Bind_addr = {HOST};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}}
NFSv4 {{
    Graceless = true;
    Only_Numeric_Owners = true;
    RecoveryRoot = {_ganesha_string(self.workdir / "recovery")};
}}
%include "{self.exports_path.name}"
"""

    def reload(self, timeout: float = 10) -> list[str]:
        """SIGHUP, wait until ganesha has re-read its exports, return the problems it logged.

        Raises RuntimeError when ganesha rejects the new config (a syntax error: it then keeps
        the old exports) or dies (ganesha 4.3 segfaults on some syntax errors). The returned
        CRIT/MAJ lines are about exports it skipped, e.g. one whose Path does not exist.
        """
        if self._proc is None:
            raise RuntimeError("ganesha is not running")
        offset = self.log_path.stat().st_size
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            lines = self._log_lines(offset)
            if any(GANESHA_REJECTED in line for line in lines):
                time.sleep(0.1)  # the details follow that line
                problems = "\n".join(_problems(self._log_lines(offset)))
                raise RuntimeError(f"ganesha rejected its new config:\n{problems}")
            if any(GANESHA_RELOADED in line for line in lines):
                time.sleep(0.1)  # ganesha logs the per-block config errors after that line
                return _problems(self._log_lines(offset))
            code = self._proc.poll()
            if code is not None:
                message = f"ganesha died ({code}) while reloading its config{self.log_tail()}"
                raise RuntimeError(message)
            if time.monotonic() > deadline:
                raise RuntimeError(f"ganesha did not reload in {timeout}s{self.log_tail()}")
            time.sleep(0.02)

    def _log_lines(self, offset: int) -> list[str]:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").splitlines()


def _problems(lines: list[str]) -> list[str]:
    return [line for line in lines if any(level in line for level in GANESHA_PROBLEMS)]


class Samba(_Server):
    """smbd with a private smb.conf ([global] only) and all its state under workdir."""

    name = "smbd"

    def __init__(self, workdir: Path, port: int) -> None:
        super().__init__(workdir, port, workdir / "smbd.log")
        self.config_path = workdir / "smb.conf"

    @classmethod
    def start(cls, workdir: Path, port: int | None = None) -> Samba:
        workdir = Path(workdir).absolute()
        server = cls(workdir, port or free_port())
        for name in ("private", "lock", "state", "cache", "pid", "ncalrpc", "bind-dns"):
            (workdir / name).mkdir(mode=0o755, parents=True, exist_ok=True)
        (workdir / "private").chmod(0o700)
        server.config_path.write_text(server.render_config())
        argv = ["smbd", "--foreground", "--no-process-group", "-s", str(server.config_path)]
        server._spawn(argv)
        return server

    def render_config(self) -> str:
        w = self.workdir
        return f"""\
[global]
    server role = standalone server
    smb ports = {self.port}
    interfaces = lo
    bind interfaces only = yes
    server min protocol = SMB3
    disable netbios = yes
    map to guest = never
    private dir = {w / "private"}
    lock directory = {w / "lock"}
    state directory = {w / "state"}
    cache directory = {w / "cache"}
    pid directory = {w / "pid"}
    ncalrpc dir = {w / "ncalrpc"}
    binddns dir = {w / "bind-dns"}
    smb passwd file = {w / "private" / "smbpasswd"}
    usershare path =
    log file = {self.log_path}
    max log size = 0
    load printers = no
    printcap name = /dev/null
    disable spoolss = yes
"""

    def _is_helper(self, argv: list[str]) -> bool:
        # smbd starts samba-dcerpcd (and its rpcd_* workers) on demand, e.g. for smbclient -L,
        # in a session of its own, and they outlive smbd.
        return f"--configfile={self.config_path}" in argv

    def reload(self) -> None:
        """Make smbd re-read its config (and includes); returns when the message is sent."""
        self.smbcontrol("reload-config")

    def smbcontrol(self, *message: str) -> str:
        argv = ["smbcontrol", "-s", str(self.config_path), "smbd", *message]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}{self.log_tail()}")
        return proc.stdout

    def add_user(self, name: str, password: str) -> None:
        """Add (or reset) a Samba user in this server's passdb; the Unix user must exist."""
        argv = ["smbpasswd", "-c", str(self.config_path), "-a", "-s", name]
        stdin = f"{password}\n{password}\n"
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"smbpasswd -a {name} failed: {proc.stderr or proc.stdout}")
