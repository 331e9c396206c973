"""Things that stop answering, to prove that every wait of vmshare has a deadline.

- HungSocket: a Unix socket server that accepts connections and never says a word.
- FreezableProxy: forwards a Unix socket to another (libvirtd's) until frozen, then holds every
  byte in both directions: a daemon that answered and then went silent.
- stop_guest_agent: SIGSTOP the guest's qemu-ga, with a timer in the guest that resumes it.
- TcpProxy: a loopback TCP port in front of a server (the vCenter simulator) that can be stopped
  (refuses and resets, as a killed server) or frozen (accepts and never answers).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import libvirt

from .domain import agent_command

LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"


def libvirt_uri(socket_path: Path | str) -> str:
    """A libvirt URI that talks to the daemon (or whatever listens) on this Unix socket."""
    return f"qemu+unix:///system?socket={socket_path}"


class _UnixServer:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="vmshare-stall-", dir="/tmp")
        self.path = Path(self._dir.name) / "sock"  # short: sun_path holds 108 bytes
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(16)
        self._sockets: list[socket.socket] = [self._listener]
        self._closed = threading.Event()
        self.accepted = 0
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def uri(self) -> str:
        return libvirt_uri(self.path)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._sockets.append(client)
            self.serve(client)

    def serve(self, client: socket.socket) -> None:
        """Hold the connection open and never answer."""

    def close(self) -> None:
        self._closed.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._dir.cleanup()

    def __enter__(self) -> _UnixServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def pump(
    a: socket.socket, b: socket.socket, frozen: threading.Event, done: Callable[[], bool]
) -> None:
    """Forward bytes both ways until a side closes or ``done()``; while ``frozen`` is set, hold
    everything (read nothing, forward nothing): a peer that accepts and never answers."""
    peer = {a: b, b: a}
    while not done():
        if frozen.is_set():
            time.sleep(0.05)
            continue
        readable, _, _ = select.select(list(peer), [], [], 0.1)
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            peer[sock].sendall(data)


class HungSocket(_UnixServer):
    """Accepts every connection and never answers."""


class FreezableProxy(_UnixServer):
    """Forwards each connection to ``target`` until ``freeze()``; then nothing passes."""

    def __init__(self, target: str = LIBVIRT_SOCKET) -> None:
        self.target = target
        self.frozen = threading.Event()
        super().__init__()

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def serve(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.target)
        self._sockets.append(upstream)
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            pump(client, upstream, self.frozen, self._closed.is_set)


def stop_guest_agent(dom: libvirt.virDomain, seconds: int) -> None:
    """SIGSTOP the guest's qemu-ga; a timer in the guest sends SIGCONT after ``seconds``.

    While it is stopped libvirt still forwards requests into the guest, where they wait: exactly
    what a guest that hangs, or is paused between two requests, does to them.
    """
    script = (
        'p=$(pidof qemu-ga) || exit 1; (sleep "$1"; kill -CONT "$p") </dev/null >/dev/null 2>&1 & '
        'kill -STOP "$p"'
    )
    agent_command(dom, "guest-exec", {"path": "sh", "arg": ["-c", script, "sh", str(seconds)]})


class TcpProxy:
    """A loopback TCP port in front of a server (the vCenter simulator's) that a test can cut.

    ``stop()``: the port refuses new connections and every open one is reset (RST), which is
    what a client sees of a server that was killed; ``start()`` listens again on the same port.
    ``freeze()``: connections are accepted and bytes are held both ways, a server that accepts
    and never answers; ``thaw()`` resets what was held (stale requests are not replayed) and
    forwards again. The server behind keeps its state, so what a client left there can be
    checked after the fault."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.frozen = threading.Event()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self.start()

    def start(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self.port = listener.getsockname()[1]
            self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(OSError):
                    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
                listener.close()
        self._reset_all()

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self._reset_all()
        self.frozen.clear()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _reset_all(self) -> None:
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):  # linger 0: close sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        def dropped() -> bool:
            with self._lock:
                return client not in self._open

        try:
            pump(client, upstream, self.frozen, dropped)
        except (OSError, ValueError):  # reset or closed by stop()/thaw()
            return
        finally:
            with self._lock:
                self._open -= {client, upstream}
            client.close()
            upstream.close()
