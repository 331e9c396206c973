"""Guest file transfers over HTTPS, with the same TLS rules as the vSphere session.

InitiateFileTransferTo/FromGuest answer a URL on the ESXi host; ESXi may write ``*`` as its
host, which stands for the server vmshare talks to (its host and port, as govmomi does).
"""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urlsplit

from vmshare.errors import BackendUnavailable, GuestError

TRANSFER_TIMEOUT = 60.0  # s: for one guest file transfer


class Transfer:
    def __init__(
        self, host: str, port: int, context: ssl.SSLContext, timeout: float = TRANSFER_TIMEOUT
    ) -> None:
        self.host, self.port, self.context, self.timeout = host, port, context, timeout

    def put(self, url: str, data: bytes) -> None:
        self._request("PUT", url, data)

    def get(self, url: str) -> bytes:
        return self._request("GET", url, None)

    def _request(self, method: str, url: str, body: bytes | None) -> bytes:
        parts = urlsplit(url)
        if parts.hostname in (None, "*"):
            host, port = self.host, self.port
        else:
            host, port = parts.hostname, parts.port or 443
        if parts.scheme != "https":
            raise GuestError(
                f"the server offered a guest file transfer over {parts.scheme or 'no scheme'}; "
                "vmshare moves guest files over HTTPS only",
                hint="check the ESXi host's configuration",
            )
        connection = http.client.HTTPSConnection(
            host, port, timeout=self.timeout, context=self.context
        )
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            headers = {"Content-Length": str(len(body))} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except TimeoutError:  # its own deadline, not the session's: say which
            raise BackendUnavailable(
                f"the guest file transfer ({method}) at https://{host}:{port} did not answer "
                f"within {self.timeout:g} s",
                hint="check that the ESXi host runs and is not overloaded, then run the command "
                "again",
            ) from None
        finally:
            connection.close()
        if response.status >= 300:
            raise GuestError(
                f"guest file transfer ({method}) failed: HTTP {response.status} {response.reason}",
                hint="check that VMware Tools runs in the guest and the ESXi host is reachable",
            )
        return data
