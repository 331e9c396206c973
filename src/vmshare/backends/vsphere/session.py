"""One vSphere session per server per run: TLS verified unless the VM's settings say insecure,
every wait bounded (each request, and the logout at the end)."""

from __future__ import annotations

import contextlib
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from pyVim import connect

from vmshare.backends.vsphere.faults import vim_errors

CONNECT_TIMEOUT = 30.0  # s: each HTTP request to the server (connect and answer)
LOGOUT_TIMEOUT = 5.0  # s: the logout at the end of a run


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    insecure: bool = False  # only from the VM's explicit `insecure = true` setting
    ca_file: str | None = None

    @property
    def label(self) -> str:
        return f"https://{self.host}:{self.port}"

    def tls(self) -> ssl.SSLContext:
        """The TLS context for the session and for guest file transfers."""
        if self.insecure:  # only [vm.NAME] insecure = true: doctor warns, every plan notes it
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.ca_file)


def open_session(endpoint: Endpoint, password: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A logged-in ServiceInstance (faults and TLS refusals as vmshare errors)."""
    with vim_errors(endpoint.label, timeout):
        return connect.SmartConnect(
            host=endpoint.host,
            port=endpoint.port,
            user=endpoint.user,
            pwd=password,
            sslContext=endpoint.tls(),
            httpConnectionTimeout=timeout,
        )


def close_session(instance: Any, timeout: float = LOGOUT_TIMEOUT) -> None:
    """Log out, waiting at most ``timeout``; a session the server already dropped is fine, and a
    server that stopped answering is not waited for a whole request deadline again: the server
    ends the session itself once it is idle."""
    logout = threading.Thread(target=_logout, args=(instance,), daemon=True)
    logout.start()
    logout.join(timeout)


def _logout(instance: Any) -> None:
    with contextlib.suppress(Exception):  # logging out is best effort at the end of a run
        connect.Disconnect(instance)
