"""Things that stop answering, to prove that every wait of vmshare has a deadline.

- HungSocket: a Unix socket server that accepts connections and never says a word.
- FreezableProxy: forwards a Unix socket to another (libvirtd's) until frozen, then holds every
  byte in both directions: a daemon that answered and then went silent.
- stop_guest_agent: SIGSTOP the guest's qemu-ga, with a timer in the guest that resumes it.
"""

from __future__ import annotations

import contextlib
import select
import socket
import tempfile
import threading
import time
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
        peer = {client: upstream, upstream: client}
        while not self._closed.is_set():
            if self.frozen.is_set():  # hold everything: read nothing, forward nothing
                time.sleep(0.1)
                continue
            try:
                readable, _, _ = select.select(list(peer), [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
            except OSError:
                return


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
