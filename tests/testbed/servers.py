"""Throwaway NFSv4 (nfs-ganesha) and SMB3 (Samba) servers on 127.0.0.1 for vmshare's tests.

The test guest reaches them at 10.0.2.2 through QEMU user networking, and the connections
arrive from 127.0.0.1 (slirp NAT). Each server lives in its own workdir, on its own port, as a
child process in its own process group, so several can run at once and stop() leaves nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
# ganesha logs this at the end of a SIGHUP reload (also when the exports did not change).
GANESHA_RELOADED = "Reread exports complete"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _conf_string(value: Path | str) -> str:
    """value in double quotes for ganesha.conf or smb.conf; refuse what cannot be quoted."""
    text = str(value)
    if any(c in text for c in '"\\\n\r'):
        raise ValueError(f"cannot quote {text!r} in a server config")
    return f'"{text}"'


class _Server:
    """A daemon run in the foreground as a child process, in a process group of its own."""

    name = "server"

    def __init__(self, workdir: Path, port: int, log_path: Path) -> None:
        self.workdir = workdir
        self.port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self, argv: list[str]) -> None:
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
        """SIGTERM the process group, SIGKILL it after STOP_TIMEOUT; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(proc.pid):  # helpers that the daemon left behind in its group
            if time.monotonic() > deadline:
                _signal_group(proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT
            time.sleep(0.05)

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
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether a process of group pgid still runs (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


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
        # Graceless: no 90 s grace period after start (nor after a reload). Numeric owners:
        # the guest has no idmapper, so "root@localdomain" would show up as nobody.
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
    RecoveryRoot = {_conf_string(self.workdir / "recovery")};
}}
EXPORT_DEFAULTS {{
    Protocols = 4;
}}
%include {_conf_string(self.exports_path)}
"""

    def reload(self, timeout: float = 10) -> None:
        """SIGHUP, then wait for the log line that ends the export reload."""
        if self._proc is None:
            raise RuntimeError("ganesha is not running")
        done = self._log_text().count(GANESHA_RELOADED)
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self._log_text().count(GANESHA_RELOADED) <= done:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ganesha did not reload in {timeout}s{self.log_tail()}")
            time.sleep(0.02)

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


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
