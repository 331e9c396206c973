"""vmshare's WinRM runner against the loopback WS-Man endpoint (tests/testbed/wsman), with real
pywinrm, requests and pyspnego on the wire: NTLM with message encryption over HTTP, Basic over
HTTPS with the certificate checked, and the failures a user meets, each as one vmshare error
with a hint and never the password."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
import traceback

import pytest
import winrm.protocol
from pydantic import ValidationError
from tests.testbed.wsman import (
    MAX_COMMAND_LINE,
    Silent,
    Tap,
    clixml_errors,
    make_ca,
    read_stdin,
)
from tests.testbed.wsman.fixture import PASSWORD_ENV, WsmanBed

from vmshare.backends.hyperv.settings import HypervVm
from vmshare.backends.hyperv.winrm import WinRMPowerShell
from vmshare.errors import (
    BackendUnavailable,
    HostCommandError,
    HostCommandTimeout,
    UsageError,
    VmshareError,
)
from vmshare.formats.powershell import command, json_result, script
from vmshare.secret_value import Secret
from vmshare.secrets import SecretRef

MARKER = "Marker-7f3a-Ünïcode-‘quoted’"


def echo(got: list[str]):
    """A handler that records each script and answers with its length and the marker."""

    def handle(text: str) -> tuple[int, str, str]:
        got.append(text)
        return 0, json.dumps({"length": len(text), "marker": MARKER}), ""

    return handle


def everything_said(exc: BaseException) -> str:
    return " ".join(
        [
            str(exc),
            repr(exc),
            str(getattr(exc, "hint", "")),
            "".join(traceback.format_exception(exc)),
        ]
    )


def test_ntlm_over_http_encrypts_every_message_on_the_wire(wsman: WsmanBed) -> None:
    got: list[str] = []
    wsman.handler = echo(got)
    tap = Tap(wsman.http.port)
    try:
        runner = WinRMPowerShell(wsman.settings(port=tap.port))
        text = script(command("Get-VM", Name=MARKER))
        result = runner.run(text)
    finally:
        tap.close()
    assert got == [text]  # the endpoint decoded exactly the script vmshare built
    assert json_result(result, "looking up the VM") == {"length": len(text), "marker": MARKER}
    encoded = base64.b64encode(text.encode("utf-16-le"))
    wire = bytes(tap.sent) + bytes(tap.received)
    assert b"multipart/encrypted" in tap.sent and b"Negotiate " in tap.sent
    for clear in (encoded, b"powershell", b"EncodedCommand", b"Envelope", MARKER.encode()):
        assert clear not in wire
    assert wsman.password.encode() not in wire
    assert wsman.http.received and all(encrypted for _, encrypted in wsman.http.received)
    assert wsman.http.service.open_shells == 0  # the shell was deleted


def test_basic_over_https_checks_the_certificate(wsman: WsmanBed, tmp_path) -> None:
    got: list[str] = []
    wsman.handler = echo(got)
    runner = WinRMPowerShell(wsman.settings(tls=True, transport="basic"))
    assert json_result(runner.run("Get-VM"), "listing VMs")["marker"] == MARKER
    assert wsman.https.received[0] == (wsman.user, False)  # TLS, no second layer

    other = make_ca(tmp_path / "other", label="some other CA")
    wrong = WinRMPowerShell(wsman.settings(tls=True, transport="basic", ca_file=str(other.ca_file)))
    with pytest.raises(BackendUnavailable) as caught:
        wrong.run("Get-VM")
    assert "certificate verify failed" in str(caught.value)
    assert "ca_file" in (caught.value.hint or "")
    assert got == ["Get-VM"]  # nothing ran through the refused connection


def test_insecure_is_the_only_way_around_the_check(wsman: WsmanBed) -> None:
    wsman.handler = echo([])
    unchecked = wsman.settings(tls=True, transport="basic", ca_file=None, insecure=True)
    assert WinRMPowerShell(unchecked).run("Get-VM").exit_code == 0
    system_trust = wsman.settings(tls=True, transport="basic", ca_file=None)
    with pytest.raises(BackendUnavailable, match="certificate verify failed"):
        WinRMPowerShell(system_trust).run("Get-VM")


def test_basic_is_refused_over_plain_http() -> None:
    with pytest.raises(ValidationError, match="winrms://"):
        HypervVm.model_validate(
            {
                "name": "d",
                "winrm": "winrm://h",
                "transport": "basic",
                "user": "u",
                "password_env": "X",
            }
        )


def test_a_script_over_the_command_line_limit_is_refused_before_sending(wsman: WsmanBed) -> None:
    wsman.handler = echo([])
    runner = WinRMPowerShell(wsman.settings())
    with pytest.raises(UsageError, match="too long"):
        runner.run("'" + "x" * 4000 + "'")
    assert wsman.http.received == [] and wsman.http.command_lines == []


def test_the_endpoint_enforces_cmd_exe_s_limit_on_what_arrives(wsman: WsmanBed) -> None:
    calls: list[str] = []
    wsman.handler = echo(calls)
    protocol = winrm.protocol.Protocol(
        wsman.https.url,
        transport="basic",
        username=wsman.user,
        password=wsman.password,
        ca_trust_path=str(wsman.ca.ca_file),
        proxy=None,
    )
    shell = protocol.open_shell()

    def line(n: int) -> tuple[str, str]:
        script_text = "#" * n
        return script_text, base64.b64encode(script_text.encode("utf-16-le")).decode()

    n = max(n for n in range(4000) if len("powershell -EncodedCommand " + line(n)[1]) <= 8191)
    for size, too_long in ((n, False), (n + 1, True)):
        script_text, encoded = line(size)
        assert (len("powershell -EncodedCommand " + encoded) > MAX_COMMAND_LINE) is too_long
        line_id = protocol.run_command(shell, "powershell", ["-EncodedCommand", encoded])
        _, err, exit_code = protocol.get_command_output(shell, line_id)
        protocol.cleanup_command(shell, line_id)
        if too_long:
            assert (exit_code, err) == (1, b"The command line is too long.\r\n")
        else:
            assert exit_code == 0 and calls == [script_text]
    protocol.close_shell(shell)
    assert len(calls) == 1  # only the line within the limit reached "PowerShell"


def test_the_error_stream_becomes_a_vmshare_error(wsman: WsmanBed) -> None:
    message = "Hyper-V was unable to find a virtual machine with name 'devvm'."
    wsman.handler = lambda text: (1, "", message + "\r\n")
    result = WinRMPowerShell(wsman.settings()).run("Get-VM")
    assert (result.exit_code, result.stderr) == (1, message)  # CLIXML progress dropped
    with pytest.raises(HostCommandError) as caught:
        json_result(result, "look up VM 'devvm'")
    assert str(caught.value) == f"could not look up VM 'devvm' on the Windows host: {message}"
    assert caught.value.hint

    wsman.handler = lambda text: (1, "", clixml_errors("Access is denied.\r\n"))
    with pytest.raises(HostCommandError, match="Access is denied") as denied:
        json_result(WinRMPowerShell(wsman.settings()).run("Get-VM"), "listing VMs")
    assert "Hyper-V Administrators" in (denied.value.hint or "")


def test_unicode_survives_both_ways(wsman: WsmanBed) -> None:
    got: list[str] = []
    wsman.handler = echo(got)
    text = f"Write-Output '{MARKER} 𝄞 日本'"
    result = WinRMPowerShell(wsman.settings(tls=True, transport="basic")).run(text)
    assert got == [text]
    assert json_result(result, "echo")["marker"] == MARKER


@pytest.mark.parametrize("tls", [False, True], ids=["ntlm-http", "basic-https"])
def test_a_wrong_password_is_a_clear_error_without_the_secret(
    wsman: WsmanBed, tls: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wsman.handler = echo([])
    right = wsman.password
    settings = wsman.settings(tls=tls, transport="basic" if tls else "ntlm")
    wrong = "wrong-" + right
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendUnavailable) as caught:
        WinRMPowerShell(settings).run("Get-VM")
    said = everything_said(caught.value)
    assert "refused the credentials of user" in str(caught.value)
    assert PASSWORD_ENV in (caught.value.hint or "")  # names the setting to fix
    for secret in (right, wrong):
        assert secret not in said and secret not in caplog.text


def test_an_endpoint_that_never_answers_costs_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VMSHARE_TEST_UNUSED", "unused-password-3b9f")
    silent = Silent()
    try:
        settings = HypervVm.model_validate(
            {
                "name": "d",
                "winrm": f"winrm://127.0.0.1:{silent.port}",
                "user": "u",
                "password_env": "VMSHARE_TEST_UNUSED",
            }
        )
        start = time.monotonic()
        runner = WinRMPowerShell(settings)
        # the deadline (3 s) plus the 2 s the host's own timeout fault may take to arrive
        with pytest.raises(BackendUnavailable, match="did not answer within 5 s") as caught:
            runner.run("Get-VM", timeout=3)
        assert time.monotonic() - start < 8
        assert "winrm" in (caught.value.hint or "")
        # a rollback's scripts that follow do not wait as long again, each
        start = time.monotonic()
        with pytest.raises(BackendUnavailable, match="within 5 s earlier in this run"):
            runner.run("Remove-SmbShare", timeout=3)
        assert time.monotonic() - start < 0.5
    finally:
        silent.close()


def test_a_script_that_runs_too_long_is_stopped_at_the_deadline(wsman: WsmanBed) -> None:
    wsman.handler = lambda text: (time.sleep(8), (0, "", ""))[1]
    start = time.monotonic()
    with pytest.raises(HostCommandTimeout, match="did not finish within 2 s"):
        WinRMPowerShell(wsman.settings()).run("Start-Sleep 8", timeout=2)
    assert time.monotonic() - start < 6
    assert wsman.http.service.open_shells == 0  # signalled and deleted all the same


def test_nothing_listening_says_which_setting_to_check(wsman: WsmanBed) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackendUnavailable, match="nothing accepts connections") as caught:
        WinRMPowerShell(wsman.settings(port=port)).run("Get-VM")
    assert "winrm = " in (caught.value.hint or "")


def test_a_stopped_endpoint_refuses_then_answers_again_as_it_was(wsman: WsmanBed) -> None:
    """The test bed's "WinRM service stopped" fault: refused while halted, then the same port
    and certificate (the CA check passes) once restarted."""
    wsman.handler = echo([])
    runner = WinRMPowerShell(wsman.settings(tls=True, transport="basic"))
    wsman.https.halt()
    with pytest.raises(BackendUnavailable, match="nothing accepts connections at the WinRM"):
        runner.run("Get-VM")
    wsman.https.restart()
    assert json_result(runner.run("Get-VM"), "echo")["marker"] == MARKER


def test_a_missing_ca_file_is_a_usage_error(wsman: WsmanBed, tmp_path) -> None:
    settings = wsman.settings(tls=True, ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(UsageError, match="ca_file"):
        WinRMPowerShell(settings).run("Get-VM")


def test_every_failure_is_a_vmshare_error(wsman: WsmanBed) -> None:
    """A WS-Man fault (here: a Receive for a shell the host no longer has) reaches the user as
    a HostCommandError naming the host's reason."""
    runner = WinRMPowerShell(wsman.settings())

    def vanish(text: str) -> tuple[int, str, str]:
        for shell_id in list(wsman.http.service._shells):
            wsman.http.service._shells.pop(shell_id)
        return 0, "", ""

    wsman.handler = vanish
    with pytest.raises(VmshareError, match="shell was not found") as caught:
        runner.run("Get-VM")
    assert isinstance(caught.value, HostCommandError)


def test_the_endpoint_refuses_what_windows_refuses_by_default(wsman: WsmanBed) -> None:
    """AllowUnencrypted = false: NTLM without message encryption over HTTP, and Basic over
    HTTP, are answered 401 (pywinrm: credentials rejected) and nothing runs."""
    wsman.handler = echo(calls := [])
    import winrm.exceptions

    for transport, encryption in (("ntlm", "never"), ("basic", "auto")):
        protocol = winrm.protocol.Protocol(
            wsman.http.url,
            transport=transport,
            username=wsman.user,
            password=wsman.password,
            message_encryption=encryption,
            ca_trust_path=None,
            proxy=None,
        )
        with pytest.raises(winrm.exceptions.InvalidCredentialsError):
            protocol.open_shell()
    assert calls == [] and wsman.http.service.open_shells == 0


def test_a_secret_goes_by_stdin_not_by_the_command_line(wsman: WsmanBed) -> None:
    secret = "S3cret-" + "ü‘’" + wsman.password[-6:]
    seen: list[bytes] = []

    def reads_stdin(text: str) -> tuple[int, str, str]:
        seen.append(read_stdin())
        return 0, json.dumps({"length": len(seen[-1].decode())}), ""

    wsman.handler = reads_stdin
    tap = Tap(wsman.http.port)
    try:
        text = script(
            "$secret = [Console]::In.ReadLine()", "@{ length = $secret.Length } | ConvertTo-Json"
        )
        result = WinRMPowerShell(wsman.settings(port=tap.port)).run_with_input(text, secret + "\n")
    finally:
        tap.close()
    assert seen == [(secret + "\n").encode()]
    assert json_result(result, "reading stdin") == {"length": len(secret) + 1}
    assert all(secret not in line for line in wsman.http.command_lines)
    assert secret.encode() not in bytes(tap.sent)


def test_an_unknown_host_name_says_which_setting_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VMSHARE_TEST_UNUSED", "unused-password-3b9f")
    settings = HypervVm.model_validate(
        {
            "name": "d",
            "winrm": "winrm://no-such-host.invalid",
            "user": "u",
            "password_env": "VMSHARE_TEST_UNUSED",
        }
    )
    with pytest.raises(BackendUnavailable, match="cannot resolve the WinRM host") as caught:
        WinRMPowerShell(settings).run("Get-VM", timeout=10)
    assert "winrm = 'winrm://no-such-host.invalid'" in (caught.value.hint or "")


def test_ntlm_over_https_relies_on_tls_alone(wsman: WsmanBed) -> None:
    got: list[str] = []
    wsman.handler = echo(got)
    result = WinRMPowerShell(wsman.settings(tls=True)).run("Get-VM")
    assert json_result(result, "listing VMs")["marker"] == MARKER and got == ["Get-VM"]
    assert wsman.https.received and not any(encrypted for _, encrypted in wsman.https.received)


def test_the_password_is_resolved_once_per_runner(
    wsman: WsmanBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vmshare.backends.hyperv.winrm as module

    resolved: list[str] = []
    real = module.resolve_secret

    def counting(ref: SecretRef, what: str) -> Secret:
        resolved.append(what)
        return real(ref, what)

    monkeypatch.setattr(module, "resolve_secret", counting)
    wsman.handler = echo([])
    runner = WinRMPowerShell(wsman.settings())
    for _ in range(2):
        assert runner.run("Get-VM").exit_code == 0
    assert resolved == [f"the WinRM password of {wsman.user} on {wsman.http.url}"]


@pytest.mark.parametrize(
    ("transport", "flag", "extra"),
    [
        ("kerberos", "HAVE_KERBEROS", "pywinrm[kerberos]"),
        ("credssp", "HAVE_CREDSSP", "pywinrm[credssp]"),
    ],
)
def test_a_transport_whose_package_is_missing_names_the_extra(
    wsman: WsmanBed, monkeypatch: pytest.MonkeyPatch, transport: str, flag: str, extra: str
) -> None:
    import winrm.transport

    monkeypatch.setattr(winrm.transport, flag, False)
    wsman.handler = echo(calls := [])
    with pytest.raises(BackendUnavailable, match=f"{transport}.* not installed") as caught:
        WinRMPowerShell(wsman.settings(transport=transport)).run("Get-VM")
    assert extra in (caught.value.hint or "") and calls == []


def test_a_handler_taking_stdin_gets_it_as_text(wsman: WsmanBed) -> None:
    """The Hyper-V stand-in's shape, ``handle(script, stdin)``: stdin arrives as text, empty
    when the script got none (the runner closes stdin all the same)."""
    calls: list[tuple[str, str]] = []

    def handle(text: str, stdin: str = "") -> tuple[int, str, str]:
        calls.append((text, stdin))
        return 0, "{}", ""

    wsman.handler = handle
    runner = WinRMPowerShell(wsman.settings())
    runner.run("Get-VM")
    runner.run_with_input("New-LocalUser", "pässwörd\n")
    assert calls == [("Get-VM", ""), ("New-LocalUser", "pässwörd\n")]
