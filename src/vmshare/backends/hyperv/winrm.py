"""PowerShell on a Windows host over WinRM, through pywinrm: the remote transport behind
``vmshare.formats.powershell.PowerShellRunner``.

Each script runs as ``powershell -NoProfile -NonInteractive -EncodedCommand <base64>`` in a
fresh ``cmd`` shell (Create, Command, Receive until done, Signal, Delete) opened with code page
65001, so stdout arrives as UTF-8. Certificates are checked over ``winrms://`` unless the VM's
settings say ``insecure = true``; over ``winrm://`` (plain HTTP) every message is encrypted with
the authentication's session key (``message_encryption = "always"``), and Basic is refused.

The password is resolved only when the first script runs and goes to pywinrm alone: no message,
log line or exception of this module holds it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from vmshare.backends.hyperv.settings import HypervVm
from vmshare.errors import (
    BackendUnavailable,
    HostCommandError,
    HostCommandTimeout,
    UsageError,
    VmshareError,
    never_ran,
)
from vmshare.formats.clixml import plain_stderr
from vmshare.formats.powershell import PsResult, encoded_command
from vmshare.secret_value import Secret, redact
from vmshare.secrets import resolve_secret

log = logging.getLogger("vmshare.hyperv.winrm")

T = TypeVar("T")

UTF8_CODEPAGE = 65001
# how long the WinRM service may hold a Receive open before answering "still running"
OPERATION_TIMEOUT = 20
# on top of that, how long the network may take; also the budget of every other request
NETWORK_MARGIN = 10


def endpoint_url(settings: HypervVm) -> str:
    """``winrm://h[:p]`` -> ``http://h:5985/wsman``; ``winrms://`` -> ``https://h:5986/wsman``."""
    parts = urlsplit(settings.winrm)
    secure = parts.scheme == "winrms"
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = parts.port or (5986 if secure else 5985)
    path = parts.path if parts.path not in ("", "/") else "/wsman"
    return f"{'https' if secure else 'http'}://{host}:{port}{path}"


class WinRMPowerShell:
    """Runs complete scripts on the Windows host a ``winrm://`` / ``winrms://`` VM names."""

    def __init__(self, settings: HypervVm) -> None:
        if settings.winrm == "local":
            raise UsageError(
                f"VM {settings.name!r} runs PowerShell on this host, not over WinRM",
                hint='set winrm = "winrms://HOST" in its [vm.NAME] table to reach a remote host',
            )
        self._settings = settings
        self.url = endpoint_url(settings)
        self._secure = self.url.startswith("https://")
        self._password: Secret | None = None  # resolved once: a prompt asks once per run
        self._waiting = 0.0  # s: the read timeout of the request in flight
        # set once the endpoint let a request time out: later scripts of this run (a
        # rollback's undo steps) fail at once rather than wait as long again each
        self._silent: BackendUnavailable | None = None

    # -- the PowerShellRunner interface (and backends/hyperv's InputRunner) ----------------

    def run(self, script: str, *, timeout: float = 120) -> PsResult:
        return self._run(script, None, timeout)

    def run_with_input(self, script: str, data: str, *, timeout: float = 120) -> PsResult:
        """Run ``script`` with ``data`` on its stdin (UTF-8, read with ``[Console]::In``): how a
        secret reaches it without being part of the command line the host records."""
        return self._run(script, data, timeout)

    def _run(self, script: str, stdin: str | None, timeout: float) -> PsResult:
        argv = encoded_command(script)  # refuses a script over the limit before connecting
        if self._silent is not None:
            raise BackendUnavailable(
                f"{self._silent.message} earlier in this run: not asked again",
                hint=self._silent.hint,
            )
        deadline = time.monotonic() + timeout
        protocol = self._protocol()
        started = False  # once the Command is sent the script may run: a timeout is then the
        # script's, not the connection's
        with self._translated(timeout, lambda: started):
            self._budget(protocol, deadline)
            shell = protocol.open_shell(noprofile=True, codepage=UTF8_CODEPAGE)
            try:
                self._budget(protocol, deadline)
                started = True
                command = protocol.run_command(shell, argv[0], argv[1:])
                try:
                    # stdin is closed even when empty: a script that reads it sees the end,
                    # never a pipe left open; bytes, as pywinrm would encode a str in cp437
                    data = (stdin or "").encode()
                    protocol.send_command_input(shell, command, data, end=True)
                    stdout, stderr, code = self._receive(protocol, shell, command, deadline)
                finally:
                    self._quietly(protocol, lambda: protocol.cleanup_command(shell, command))
            finally:
                self._quietly(protocol, lambda: protocol.close_shell(shell, close_session=True))
        return PsResult(
            code,
            stdout.decode("utf-8", "replace").removeprefix("\ufeff"),
            plain_stderr(stderr.decode("utf-8", "replace")),
        )

    # -- the steps ------------------------------------------------------------------------------

    def _protocol(self) -> Any:
        try:
            from winrm.exceptions import InvalidCredentialsError, WinRMError
            from winrm.protocol import Protocol
        except ImportError:
            raise BackendUnavailable(
                "reaching Hyper-V over WinRM needs the Python package 'pywinrm'",
                hint="pip install 'vmshare[hyperv]'",
            ) from None
        settings = self._settings
        if settings.ca_file is not None and not Path(settings.ca_file).is_file():
            raise UsageError(
                f"ca_file {settings.ca_file} of VM {settings.name!r} is not a file",
                hint="set ca_file to the PEM file of the CA that signed the host's WinRM "
                "certificate",
            )
        password = None
        if settings.password is not None:
            if self._password is None:
                what = f"the WinRM password of {settings.user} on {self.url}"
                self._password = resolve_secret(settings.password, what)
            password = self._password.reveal()
        elif settings.transport != "kerberos":
            raise UsageError(
                f"VM {settings.name!r}: WinRM with {settings.transport} needs a user and a "
                "password reference",
                hint=f'set user and password_env = "NAME" in [vm.{settings.name}]',
            )
        try:
            return Protocol(
                self.url,
                transport=settings.transport,
                username=settings.user,
                password=password,
                server_cert_validation="ignore" if settings.insecure else "validate",
                # the CA the settings name, else the system's; never REQUESTS_CA_BUNDLE silently
                ca_trust_path=settings.ca_file,  # type: ignore[arg-type]
                read_timeout_sec=OPERATION_TIMEOUT + NETWORK_MARGIN,
                operation_timeout_sec=OPERATION_TIMEOUT,
                message_encryption=self._encryption(),
                proxy=None,  # no proxy from the environment sees the traffic
            )
        except (InvalidCredentialsError, WinRMError) as exc:
            raise BackendUnavailable(
                f"WinRM to {self.url}: {redact(str(exc))}",
                hint=f"check user, password and transport in [vm.{settings.name}]",
            ) from None

    def _encryption(self) -> Literal["auto", "always", "never"]:
        # over HTTPS TLS protects the messages; over HTTP the session key must, always
        return "auto" if self._secure else "always"

    def _receive(
        self, protocol: Any, shell: str, command: str, deadline: float
    ) -> tuple[bytes, bytes, int]:
        from winrm.exceptions import WinRMOperationTimeoutError

        stdout: list[bytes] = []
        stderr: list[bytes] = []
        while True:
            self._budget(protocol, deadline)
            try:
                out, err, code, done = protocol.get_command_output_raw(shell, command)
            except WinRMOperationTimeoutError:
                continue  # the host's "still running"; ask again while the deadline allows
            stdout.append(out)
            stderr.append(err)
            if done:
                return b"".join(stdout), b"".join(stderr), int(code)

    def _budget(self, protocol: Any, deadline: float) -> None:
        """Fit the next request into what is left of the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        operation = max(1, min(OPERATION_TIMEOUT, int(left)))
        protocol.operation_timeout_sec = operation
        protocol.transport.read_timeout_sec = min(operation + NETWORK_MARGIN, left + 2)
        self._waiting = protocol.transport.read_timeout_sec

    def _quietly(self, protocol: Any, action: Callable[[], object]) -> None:
        """Clean-up after the result is known (or lost): its failure changes nothing, and it
        may not stretch a missed deadline much further."""
        protocol.transport.read_timeout_sec = min(protocol.transport.read_timeout_sec, 5)
        try:
            action()
        except Exception as exc:  # clean-up must not mask the outcome
            log.debug("WinRM clean-up on %s failed: %s", self.url, type(exc).__name__)

    # -- errors -----------------------------------------------------------------------------

    @contextmanager
    def _translated(self, timeout: float, started: Callable[[], bool]) -> Iterator[None]:
        import requests.exceptions
        from winrm.exceptions import InvalidCredentialsError, WinRMError, WSManFaultError

        settings = self._settings
        try:
            yield
        except VmshareError:
            raise
        except requests.exceptions.Timeout:
            # one request got no answer at all (not even WinRM's "still running")
            self._silent = BackendUnavailable(
                f"the WinRM endpoint {self.url} did not answer within {self._waiting:.0f} s",
                hint="the script may have run: check the host before trying again"
                if started()
                else f"check that the host's WinRM service answers (winrm = {settings.winrm!r} "
                f"in [vm.{settings.name}]) and that its firewall lets WinRM through",
            )
            raise self._silent from None
        except TimeoutError:
            if started():
                raise HostCommandTimeout(
                    f"a PowerShell script on {self.url} did not finish within {timeout:g} s",
                    hint="the host may be busy; the script may still have run: check its "
                    "state before trying again",
                ) from None
            raise BackendUnavailable(
                f"the WinRM endpoint {self.url} did not answer within {timeout:g} s",
                hint=f"check winrm = {settings.winrm!r} in [vm.{settings.name}] and that the "
                "host's firewall lets WinRM through",
            ) from None
        except InvalidCredentialsError:
            raise BackendUnavailable(
                f"the WinRM endpoint {self.url} refused the credentials of user "
                f"{settings.user!r} ({settings.transport})",
                hint=f"check user and the password ({settings.password}) in "
                f"[vm.{settings.name}]; the account must be allowed WinRM (an Administrator "
                "or a member of Remote Management Users) and Hyper-V (Hyper-V Administrators)",
            ) from None
        except requests.exceptions.SSLError as exc:
            raise BackendUnavailable(
                f"TLS to the WinRM endpoint {self.url} failed: {_tls_reason(exc)}",
                hint=f"set ca_file in [vm.{settings.name}] to the CA that signed the host's "
                "WinRM certificate (insecure = true turns the check off: not recommended)",
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise self._unreachable(exc) from None
        except WSManFaultError as exc:
            raise HostCommandError(
                f"the WinRM service on {self.url} answered with a fault: "
                f"{redact(str(exc.reason)).strip()}",
                hint="check the host's WinRM service (`winrm get winrm/config` on the host)",
            ) from None
        except WinRMError as exc:
            raise BackendUnavailable(
                f"WinRM to {self.url}: {redact(str(exc))}",
                hint=_missing_extra(settings.transport),
            ) from None

    def _unreachable(self, exc: Exception) -> BackendUnavailable:
        settings = self._settings
        text = str(exc)
        host = urlsplit(self.url).hostname
        where = f"[vm.{settings.name}]"
        if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
            return never_ran(
                BackendUnavailable(
                    f"cannot resolve the WinRM host {host!r}",
                    hint=f"check the host name in winrm = {settings.winrm!r} in {where}",
                )
            )
        if "refused" in text:
            return never_ran(
                BackendUnavailable(
                    f"nothing accepts connections at the WinRM endpoint {self.url}",
                    hint=f"check winrm = {settings.winrm!r} in {where} (WinRM listens on 5985 for "
                    "winrm://, 5986 for winrms://); on the host, Enable-PSRemoting starts it",
                )
            )
        return BackendUnavailable(
            f"cannot reach the WinRM endpoint {self.url}: {type(exc).__name__}",
            hint=f"check winrm = {settings.winrm!r} in {where} and the network to the host",
        )


def _tls_reason(exc: Exception) -> str:
    found = re.search(r"certificate verify failed: ([^(')]+)", str(exc))
    if found:
        return "certificate verify failed: " + found.group(1).strip()
    found = re.search(r"\[SSL: [A-Z_]+\] ([^(')]+)", str(exc))
    return found.group(1).strip() if found else "the TLS handshake failed"


def _missing_extra(transport: str) -> str:
    extras = {"kerberos": "pywinrm[kerberos]", "credssp": "pywinrm[credssp]"}
    if transport in extras:
        return f"{transport} needs pip install '{extras[transport]}'"
    return "check the transport setting and the host's WinRM configuration"
