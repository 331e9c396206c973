"""A loopback WinRM listener: HTTP or HTTPS on 127.0.0.1, Basic and Negotiate(NTLM)
authentication, and NTLM message encryption in the framing of MS-WSMV 2.2.9.1.1 (the one
pywinrm's ``winrm/encryption.py`` writes and reads), in front of ``soap.ShellService``.

Like a Windows host with the default WinRM service settings (AllowUnencrypted = false): over
plain HTTP, Basic is refused and NTLM-authenticated messages must arrive encrypted, else the
reply is 401. NTLM authenticates the TCP connection, so the state lives in the per-connection
request handler. pyspnego's NTLM acceptor checks the client's answer against the users in the
file named by ``NTLM_USER_FILE`` (``DOMAIN:USER:PASSWORD`` lines), which this module writes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import ssl
import struct
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import spnego
import spnego.exceptions

from tests.testbed.wsman import commandline
from tests.testbed.wsman.soap import Handler, ShellService

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"
_ENCRYPTED_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'
# NTLM_USER_FILE is process-wide: every acceptor step runs with it pointing at its endpoint's file
_NTLM_ENV = threading.Lock()


def not_configured(script: str) -> tuple[int, str, str]:
    return 1, "", "the test set no handler on the WS-Man endpoint\r\n"


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: WsmanEndpoint

    def __init__(self, address: tuple[str, int], endpoint: WsmanEndpoint) -> None:
        self.endpoint = endpoint
        self.connections: set[socket.socket] = set()  # open ones: a stopped service drops them
        super().__init__(address, _Connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up or refuses our certificate is the client's business

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        for sock in list(self.connections):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        tls = self.endpoint.tls
        if tls is not None:
            # the handshake happens in the connection's own thread, at its first read
            sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.connections.add(sock)
        return sock, address


class _Connection(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection
    server: _Listener
    _ntlm: Any = None
    _ntlm_user: str | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or "0"))
        if not endpoint.answering.is_set():  # held: the request is in, no reply ever leaves
            endpoint.answering.wait()
            self.close_connection = True
            return
        user = self._authenticate(endpoint)
        if user is None:
            return
        encrypted = self.headers.get("Content-Type", "").startswith("multipart/encrypted")
        if encrypted:
            if self._ntlm is None or not self._ntlm.complete:
                self._reply(400, b"")
                return
            try:
                body = self._unseal(body)
            except (ValueError, spnego.exceptions.SpnegoError):
                self._reply(400, b"")
                return
        elif body and endpoint.tls is None and not endpoint.allow_unencrypted:
            self._deny(endpoint)
            return
        if not body:
            self._reply(200, b"")  # pywinrm's empty request that sets up the NTLM context
            return
        endpoint.received.append((user, encrypted))
        status, reply = endpoint.service.handle(body, user, endpoint.url)
        if encrypted:
            self._reply(status, self._seal(reply), _ENCRYPTED_TYPE)
        else:
            self._reply(status, reply, "application/soap+xml;charset=UTF-8")

    # -- authentication --------------------------------------------------------------------

    def _authenticate(self, endpoint: WsmanEndpoint) -> str | None:
        """The user this request is made for, or None once a 401 has been sent."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and "basic" in endpoint.auth:
            if endpoint.tls is None and not endpoint.allow_unencrypted:
                self._deny(endpoint)  # Windows refuses Basic over HTTP by default
                return None
            try:
                user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            if endpoint.users.get(user) != password or not user:
                self._deny(endpoint)
                return None
            return user
        if scheme in ("negotiate", "ntlm") and "ntlm" in endpoint.auth:
            return self._ntlm_step(endpoint, scheme, token)
        if self._ntlm is not None and self._ntlm.complete and self._ntlm_user:
            return self._ntlm_user  # the connection is authenticated already
        self._deny(endpoint)
        return None

    def _ntlm_step(self, endpoint: WsmanEndpoint, scheme: str, token: str) -> str | None:
        try:
            data = base64.b64decode(token)
        except ValueError:
            data = b""
        try:
            with _NTLM_ENV:
                previous = os.environ.get("NTLM_USER_FILE")
                os.environ["NTLM_USER_FILE"] = str(endpoint.ntlm_user_file)
                try:
                    if data[8:12] == struct.pack("<I", 1) or self._ntlm is None:  # NEGOTIATE
                        self._ntlm = spnego.server(protocol="ntlm", service="http")
                        self._ntlm_user = None
                    answer = self._ntlm.step(data)
                finally:
                    if previous is None:
                        os.environ.pop("NTLM_USER_FILE", None)
                    else:
                        os.environ["NTLM_USER_FILE"] = previous
        except spnego.exceptions.SpnegoError:
            self._ntlm = None
            self._deny(endpoint)
            return None
        if not self._ntlm.complete:
            header = scheme.capitalize() + " " + base64.b64encode(answer or b"").decode()
            self._reply(401, b"", headers={"WWW-Authenticate": header})
            return None
        self._ntlm_user = str(self._ntlm.client_principal)
        return self._ntlm_user

    def _deny(self, endpoint: WsmanEndpoint) -> None:
        offers = []
        if "ntlm" in endpoint.auth:
            offers.append("Negotiate")
        if "basic" in endpoint.auth:
            offers.append('Basic realm="WSMAN"')
        self._ntlm = None
        self._reply(401, b"", headers={"WWW-Authenticate": ", ".join(offers)})

    # -- message encryption ----------------------------------------------------------------

    def _unseal(self, body: bytes) -> bytes:
        """MS-WSMV 2.2.9.1.1: a header part naming the clear length, then the 4-byte signature
        length, the signature and the sealed message."""
        parts = [part for part in body.split(BOUNDARY + b"\r\n") if part]
        if len(parts) != 2:
            raise ValueError("not one encrypted part")
        header, payload = parts[0], parts[1].removesuffix(BOUNDARY + b"--\r\n")
        length = int(header.split(b"Length=")[1].strip())
        prefix = b"\tContent-Type: application/octet-stream\r\n"
        if not payload.startswith(prefix):
            raise ValueError("no octet-stream part")
        payload = payload[len(prefix) :]
        (size,) = struct.unpack("<i", payload[:4])
        message = self._ntlm.unwrap(payload[4 : 4 + size] + payload[4 + size :]).data
        if len(message) != length:
            raise ValueError("length mismatch")
        return bytes(message)

    def _seal(self, message: bytes) -> bytes:
        sealed = self._ntlm.wrap(message, encrypt=True).data
        signature, data = sealed[:16], sealed[16:]
        return (
            BOUNDARY + b"\r\n"
            b"\tContent-Type: " + PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(message)).encode()
            + b"\r\n"
            + BOUNDARY
            + b"\r\n"
            b"\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<i", len(signature))
            + signature
            + data
            + BOUNDARY
            + b"--\r\n"
        )

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Server", "Microsoft-HTTPAPI/2.0")
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class WsmanEndpoint:
    """A WinRM listener on 127.0.0.1 (``url``); set ``handler`` to play PowerShell.

    ``auth`` holds "basic" and/or "ntlm"; ``users`` maps user names (``DOMAIN\\user`` or
    ``user``) to passwords; ``tls`` (a server SSLContext) makes it HTTPS.

    Faults (issue 14): ``halt``/``restart`` stop the WinRM service (connections refused, open
    ones dropped, shells lost) and start it again on the same port with the same certificate;
    ``hold``/``release`` make it accept connections and read requests but never answer."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        auth: tuple[str, ...] = ("basic", "ntlm"),
        tls: ssl.SSLContext | None = None,
        allow_unencrypted: bool = False,
        handler: Handler = not_configured,
    ) -> None:
        self.auth = auth
        self.tls = tls
        self.allow_unencrypted = allow_unencrypted
        self.handler = handler
        self.received: list[tuple[str, bool]] = []  # (user, arrived encrypted) per SOAP request
        self.service = ShellService(lambda line, cp: commandline.run(line, cp, self.handler))
        self._dir = Path(tempfile.mkdtemp(prefix="vmshare-wsman-"))
        self.ntlm_user_file = self._dir / "ntlm-users"
        self.users: dict[str, str] = {}
        self.set_users(users or {})
        self.answering = threading.Event()  # cleared: requests are held, never answered
        self.answering.set()
        self._listener = _Listener(("127.0.0.1", 0), self)
        self.port = self._listener.server_address[1]
        self._thread = self._serving_thread()

    def _serving_thread(self) -> threading.Thread:
        return threading.Thread(
            target=self._listener.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="wsman-endpoint",
        )

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/wsman"

    @property
    def command_lines(self) -> list[str]:
        return self.service.command_lines

    def set_users(self, users: dict[str, str]) -> None:
        self.users = dict(users)
        lines = []
        for name, password in users.items():
            domain, _, user = name.rpartition("\\")
            lines.append(f"{domain}:{user}:{password}\n")
        self.ntlm_user_file.write_text("".join(lines), encoding="utf-8")
        self.ntlm_user_file.chmod(0o600)

    def start(self) -> WsmanEndpoint:
        self._thread.start()
        return self

    def halt(self) -> None:
        """The WinRM service stops: the port refuses connections, open ones are dropped and
        the shells are gone."""
        if self._thread.is_alive():
            self._listener.shutdown()
            self._thread.join(timeout=10)
        self._listener.server_close()
        self._listener.drop_connections()
        self.service.drop_shells()

    def restart(self) -> None:
        """The WinRM service starts again: same port, same certificate, same accounts."""
        if self._thread.is_alive():
            return
        self._listener = _Listener(("127.0.0.1", self.port), self)
        self._thread = self._serving_thread()
        self._thread.start()

    def hold(self) -> None:
        """From now on connections are accepted and requests read, and nothing answers."""
        self.answering.clear()

    def release(self) -> None:
        """Answer again; each held request's connection closes without a reply."""
        self.answering.set()

    def stop(self) -> None:
        self.release()
        self.halt()
        self.ntlm_user_file.unlink(missing_ok=True)
        self._dir.rmdir()

    def __enter__(self) -> WsmanEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
