"""vmshare's vCenter simulator: build (cached) and run the Go launcher next to this file.

main.go is built with Debian's golang-go and golang-github-vmware-govmomi-dev in GOPATH mode, once
per recipe (main.go, the govmomi package version, the Go version), into the test bed's cache
(VMSHARE_TESTBED_CACHE, default /var/cache/vmshare-testbed) under vcsim/<hash>/.

``Vcsim`` starts it on a free loopback port and stops it again (also when the body fails). With a
``guest_exec`` callable, the simulated VM named ``vm`` stands for a real guest: the launcher's
guest operations (StartProgramInGuest, ListProcessesInGuest, InitiateFileTransferTo/FromGuest)
arrive at a loopback endpoint of this module, which runs them through ``guest_exec`` (for the
QEMU test guest: its guest agent, see tests/testbed/domain.py agent_exec).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import http.server
import json
import logging
import os
import secrets
import selectors
import shutil
import signal
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..guest_image import cache_root

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("main.go")
GOVMOMI_PACKAGE = "golang-github-vmware-govmomi-dev"
GO_PACKAGE = "golang-go"
GOPATH_SYSTEM = Path("/usr/share/gocode")
BINARY = "vmshare-vcsim"

# guest_exec(argv, stdin, timeout) -> (exit code, stdout, stderr): runs argv in the real guest.
GuestExec = Callable[[Sequence[str], bytes | None, float], tuple[int, bytes, bytes]]


@dataclass(frozen=True)
class Launcher:
    binary: Path
    recipe_hash: str
    build_seconds: float  # 0 when it came from the cache


def _package_version(package: str) -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(
            f"Debian package {package} is not installed (scripts/setup installs it): {proc.stderr}"
        )
    return proc.stdout


def recipe() -> dict[str, str]:
    """What the launcher binary depends on; its hash names the cached build."""
    return {
        "main.go": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
        GOVMOMI_PACKAGE: _package_version(GOVMOMI_PACKAGE),
        GO_PACKAGE: _package_version(GO_PACKAGE),
    }


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()


def build_launcher(cache_dir: Path | None = None) -> Launcher:
    """Return the cached launcher, building it first when its recipe changed."""
    root = cache_root(cache_dir) / "vcsim"
    digest = recipe_hash()
    binary = root / digest / BINARY
    if binary.is_file():
        return Launcher(binary, digest, 0.0)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return Launcher(binary, digest, 0.0)
        for leftover in root.glob(".build-*"):  # from a builder that died: we hold the lock
            shutil.rmtree(leftover, ignore_errors=True)
        started = time.monotonic()
        log.info("building the vcsim launcher %s", digest[:12])
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            package = tmp / "src" / BINARY
            package.mkdir(parents=True)
            shutil.copy2(SOURCE, package / "main.go")
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(tmp),
                "GOPATH": f"{tmp}:{GOPATH_SYSTEM}",
                "GO111MODULE": "off",
                "GOFLAGS": "",
                "GOCACHE": str(root / "gocache"),  # kept: a changed main.go rebuilds in seconds
                "CGO_ENABLED": "0",
            }
            proc = subprocess.run(
                ["go", "build", "-o", str(tmp / BINARY), "."],
                cwd=package,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"go build of {SOURCE} failed:\n{proc.stdout}{proc.stderr}")
            (tmp / "recipe.json").write_text(json.dumps(recipe(), indent=1, sort_keys=True))
            shutil.rmtree(tmp / "src")
            shutil.rmtree(root / digest, ignore_errors=True)
            os.rename(tmp, root / digest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = time.monotonic() - started
        log.info("built the vcsim launcher in %.1f s: %s", seconds, binary)
        return Launcher(binary, digest, seconds)


class _GuestEndpoint(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """POST /<token>/exec {"argv", "stdin" (base64), "timeout"} -> {"exitCode", "stdout", "stderr"}
    (base64), run through guest_exec. Loopback only; the token keeps other local clients out."""

    daemon_threads = True

    def __init__(self, guest_exec: GuestExec) -> None:
        self.guest_exec = guest_exec
        self.token = secrets.token_hex(16)
        super().__init__(("127.0.0.1", 0), _GuestEndpointHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{self.token}"


class _GuestEndpointHandler(http.server.BaseHTTPRequestHandler):
    server: _GuestEndpoint

    def do_POST(self) -> None:
        if self.path != f"/{self.server.token}/exec":
            self._reply(404, {"error": "not found"})
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            stdin = base64.b64decode(request["stdin"]) if request.get("stdin") else None
            code, out, err = self.server.guest_exec(
                list(request["argv"]), stdin, float(request.get("timeout") or 60)
            )
        except Exception as e:  # reported to the launcher, which answers with a vSphere fault
            log.warning("guest endpoint: %s", e)
            self._reply(500, {"error": f"{type(e).__name__}: {e}"})
            return
        self._reply(
            200,
            {
                "exitCode": code,
                "stdout": base64.b64encode(out).decode(),
                "stderr": base64.b64encode(err).decode(),
            },
        )

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("guest endpoint: " + format, *args)


class Vcsim:
    """The simulator, running: ``with Vcsim(vms=4, guest_exec=...) as sim: sim.url ...``.

    Attributes once started: url, host, port, username, password, thumbprint, ca_file (PEM of
    this run's self-signed certificate), vm (the guest VM's name), vm_ref, guest_vms (with
    ``guest_vms=N``: N VMs, ``vm`` and ``vm``-2 .., all forwarding to the one guest), vms, guest_ip,
    guest_user, guest_password, start_seconds (launch to first answer), launcher.
    ``fail_next_task`` arms a failed vSphere task (fault tests).
    """

    def __init__(
        self,
        *,
        vms: int = 4,
        hosts: int = 3,
        vm: str = "vmshare-vc",
        guest_vms: int = 1,
        guest_exec: GuestExec | None = None,
        guest_ip: str = "127.0.0.1",
        guest_user: str = "root",
        guest_password: str | None = None,
        username: str = "vmshare@vsphere.local",
        password: str | None = None,
        workdir: Path | None = None,
        start_timeout: float = 60,
    ) -> None:
        self.vms, self.hosts, self.vm = vms, hosts, vm
        self.guest_vm_count = guest_vms
        self.guest_exec = guest_exec
        self.guest_ip = guest_ip
        self.guest_user = guest_user
        self.guest_password = guest_password or "guest-" + secrets.token_urlsafe(9)
        self.username = username
        self.password = password or "vc-" + secrets.token_urlsafe(9)
        self.start_timeout = start_timeout
        self._workdir = workdir
        self._stack = contextlib.ExitStack()
        self.proc: subprocess.Popen[bytes] | None = None
        self._pending = b""  # stdout read past the last line handled
        self._commands = threading.Lock()

    def __enter__(self) -> Vcsim:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def connected(self) -> Iterator[Any]:
        """A pyVmomi ServiceInstance logged in to this simulator, TLS checked against this run's
        certificate, logged out afterwards: for tests that look at the server apart from vmshare."""
        from pyVim.connect import Disconnect, SmartConnect

        context = ssl.create_default_context(cafile=str(self.ca_file))
        si = SmartConnect(
            host=self.host,
            port=self.port,
            user=self.username,
            pwd=self.password,
            sslContext=context,
        )
        try:
            yield si
        finally:
            Disconnect(si)

    def _start(self) -> None:
        self.launcher = build_launcher()
        if self._workdir is None:
            tmp = tempfile.mkdtemp(prefix="vmshare-vcsim-")
            self._stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            self.workdir = Path(tmp)
        else:
            self.workdir = Path(self._workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.launcher.binary),
            "-listen=127.0.0.1:0",  # the kernel picks a free port; the ready line says which
            f"-vms={self.vms}",
            f"-hosts={self.hosts}",
            f"-user={self.username}",
            f"-password={self.password}",
            f"-guest-vm={self.vm}",
            f"-guest-vms={self.guest_vm_count}",
            f"-guest-ip={self.guest_ip}",
            f"-guest-user={self.guest_user}",
            f"-guest-password={self.guest_password}",
        ]
        if self.guest_exec is not None:
            endpoint = _GuestEndpoint(self.guest_exec)
            thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
            thread.start()
            self._stack.callback(endpoint.server_close)
            self._stack.callback(endpoint.shutdown)
            argv.append(f"-forward={endpoint.url}")
        self.log_path = self.workdir / "vcsim.log"
        started = time.monotonic()
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file
            )
        self._stack.callback(self._stop)
        info = self._ready_line(started + self.start_timeout)
        self.url: str = info["url"]
        self.host: str = info["host"]
        self.port: int = info["port"]
        self.thumbprint: str = info["thumbprint"]
        self.vm_ref: str = info["vm_ref"]
        # the VMs that stand for the real guest (``guest_vms``), ``vm`` first
        self.guest_vms: list[str] = list(info.get("guest_vms") or [self.vm])
        self.info = info
        self.ca_file = self.workdir / "vcsim-ca.pem"
        self.ca_file.write_text(info["cert_pem"])
        self._wait_answers(started + self.start_timeout)
        self.start_seconds = time.monotonic() - started

    def _ready_line(self, deadline: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"vcsim printed no ready line in time{self._log_tail()}")
                if selector.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                    if not chunk:
                        code = self.proc.wait(5)
                        raise RuntimeError(f"vcsim exited with {code}{self._log_tail()}")
                    buffer += chunk
        line, self._pending = buffer.split(b"\n", 1)
        return json.loads(line)

    def command(self, line: str, timeout: float = 10) -> dict[str, Any]:
        """Send the launcher one stdin command (see main.go) and return its one-line answer."""
        assert self.proc is not None and self.proc.stdin is not None and "\n" not in line
        with self._commands:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
            answer = self._read_line(time.monotonic() + timeout)
        if not answer.get("ok"):
            raise RuntimeError(f"vcsim refused {line!r}: {answer}")
        return answer

    def fail_next_task(self, method: str, message: str) -> None:
        """The next call of task ``method`` (e.g. ReconfigVM_Task) on a guest VM returns a task
        that ends in a GenericVmConfigFault with ``message``; nothing of the call is applied."""
        self.command(f"fail-task {method} {message}")

    def clear_faults(self) -> None:
        self.command("clear")

    def _read_line(self, deadline: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"vcsim did not answer a command in time{self._log_tail()}")
            with selectors.DefaultSelector() as selector:
                selector.register(self.proc.stdout, selectors.EVENT_READ)
                if selector.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                    if not chunk:
                        raise RuntimeError(f"vcsim exited{self._log_tail()}")
                    self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def _wait_answers(self, deadline: float) -> None:
        """The SDK endpoint answers over TLS with this run's certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        url = f"https://{self.host}:{self.port}/sdk/vimServiceVersions.xml"
        while True:
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as reply:
                    if reply.status == 200:
                        return
            except OSError as e:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"vcsim at {url} does not answer: {e}") from e
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return "\n" + self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _stop(self) -> None:
        """Close its stdin (it exits on EOF), then SIGTERM, then SIGKILL; always reaped."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[Vcsim]:
    """The same as ``with Vcsim(**kwargs) as sim`` (for fixtures that prefer a function)."""
    with Vcsim(**kwargs) as sim:
        yield sim
