"""The ``wsman`` fixture: loopback WinRM endpoints for one test, sharing one handler (the
"PowerShell" of the Windows host they stand for) and one account. A pytest plugin
(``pytest_plugins`` in tests/conftest.py).

    def test_x(wsman):
        wsman.handler = lambda script: (0, '{"Name": "devvm"}', "")
        runner = WinRMPowerShell(wsman.settings())          # NTLM over HTTP, encrypted
        runner = WinRMPowerShell(wsman.settings(tls=True, transport="basic"))  # HTTPS, CA checked
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.wsman.commandline import takes_stdin
from tests.testbed.wsman.server import WsmanEndpoint, not_configured
from tests.testbed.wsman.soap import Handler
from tests.testbed.wsman.tls import TestCa, make_ca
from vmshare.backends.hyperv.settings import HypervVm

PASSWORD_ENV = "VMSHARE_TEST_WINRM_PASSWORD"


class WsmanBed:
    """Endpoints started on demand (``http``, ``https``, or ``endpoint(...)``), all answering
    with ``handler``; ``user``/``password`` is the account they accept."""

    def __init__(self, ca: TestCa, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ca = ca
        self.handler: Handler = not_configured
        self.user = "HVHOST\\vmshare-test"
        self.password = "pw-" + secrets.token_urlsafe(12)  # a fresh one per test
        self._monkeypatch = monkeypatch
        self._endpoints: list[WsmanEndpoint] = []
        self._http: WsmanEndpoint | None = None
        self._https: WsmanEndpoint | None = None
        monkeypatch.setenv(PASSWORD_ENV, self.password)

    def _run(self, script: str, stdin: str) -> tuple[int, str, str]:
        if takes_stdin(self.handler):
            return self.handler(script, stdin)
        return self.handler(script)

    def endpoint(
        self, *, tls: bool = False, auth: tuple[str, ...] = ("basic", "ntlm")
    ) -> WsmanEndpoint:
        endpoint = WsmanEndpoint(
            users={self.user: self.password},
            auth=auth,
            tls=self.ca.server_context() if tls else None,
            handler=self._run,
        ).start()
        self._endpoints.append(endpoint)
        return endpoint

    @property
    def http(self) -> WsmanEndpoint:
        if self._http is None:
            self._http = self.endpoint()
        return self._http

    @property
    def https(self) -> WsmanEndpoint:
        if self._https is None:
            self._https = self.endpoint(tls=True)
        return self._https

    def set_credentials(self, user: str, password: str) -> None:
        """The account every endpoint of this test accepts from now on."""
        self.user, self.password = user, password
        self._monkeypatch.setenv(PASSWORD_ENV, password)
        for endpoint in self._endpoints:
            endpoint.set_users({user: password})

    def settings(
        self,
        *,
        tls: bool = False,
        port: int | None = None,
        name: str = "devvm",
        **fields: Any,
    ) -> HypervVm:
        """A Hyper-V VM whose WinRM settings point at this bed's HTTP (or HTTPS) endpoint,
        with the password passed by reference (``password_env``)."""
        endpoint_port = port if port is not None else (self.https if tls else self.http).port
        values: dict[str, Any] = {
            "name": name,
            "winrm": f"{'winrms' if tls else 'winrm'}://127.0.0.1:{endpoint_port}",
            "user": self.user,
            "password_env": PASSWORD_ENV,
        }
        if tls:
            values["ca_file"] = str(self.ca.ca_file)
        values.update(fields)
        return HypervVm.model_validate(values)

    def stop(self) -> None:
        for endpoint in self._endpoints:
            endpoint.stop()


@pytest.fixture(scope="session")
def wsman_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return make_ca(Path(tmp_path_factory.mktemp("wsman-ca")))


@pytest.fixture
def wsman(wsman_ca: TestCa, monkeypatch: pytest.MonkeyPatch) -> Iterator[WsmanBed]:
    bed = WsmanBed(wsman_ca, monkeypatch)
    try:
        yield bed
    finally:
        bed.stop()
