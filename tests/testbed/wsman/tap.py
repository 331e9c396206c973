"""Loopback TCP helpers for wire tests: a relay that records every byte both ways (what really
crossed the socket), and a listener that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import socket
import threading


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


class Tap:
    """127.0.0.1:``port`` relays to 127.0.0.1:``target``; ``sent``/``received`` hold the bytes
    the client sent and got back."""

    def __init__(self, target: int) -> None:
        self._target = target
        self._sock = _listen()
        self.port: int = self._sock.getsockname()[1]
        self.sent = bytearray()
        self.received = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="wsman-tap").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target))
            for src, dst, log in ((client, server, self.sent), (server, client, self.received)):
                threading.Thread(
                    target=self._pump, args=(src, dst, log), daemon=True, name="wsman-tap-pump"
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, log: bytearray) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    log.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._sock.close()


class Silent:
    """Accepts connections on 127.0.0.1:``port``, reads what comes and never answers."""

    def __init__(self) -> None:
        self._sock = _listen()
        self.port: int = self._sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="wsman-silent").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self.connections.append(client)

    def close(self) -> None:
        self._sock.close()
        for client in self.connections:
            client.close()
