"""What comes back from PowerShell: CLIXML on stderr turned into plain error text, and a
script's ConvertTo-Json output (or its failure) turned into Python values or vmshare errors."""

from __future__ import annotations

import pytest
from tests.testbed.wsman import CLIXML_PROGRESS, clixml_errors

from vmshare.errors import HostCommandError
from vmshare.formats.clixml import plain_stderr, unescape
from vmshare.formats.powershell import PsResult, json_result
from vmshare.secret_value import Secret


def test_progress_records_are_dropped_and_plain_text_kept() -> None:
    assert plain_stderr(CLIXML_PROGRESS) == ""
    assert plain_stderr(CLIXML_PROGRESS + "Access is denied.\r\n") == "Access is denied."
    assert plain_stderr("no xml here\r\n") == "no xml here\r\n"


def test_error_records_are_decoded() -> None:
    text = "Cannot find path 'C:\\x & <y>' because it does not exist.\r\nsecond line"
    assert plain_stderr(clixml_errors(text)) == text.strip()
    assert plain_stderr(CLIXML_PROGRESS + clixml_errors("boom")) == "boom"
    assert unescape("a_x000D__x000A_b_x2018_") == "a\r\nb\u2018"


def test_a_broken_document_is_kept_as_it_came() -> None:
    broken = '#< CLIXML\r\n<Objs><S S="Error">x</S>'
    assert plain_stderr(broken) == broken


def test_json_output_becomes_python_values() -> None:
    assert json_result(PsResult(0, '\ufeff{"Name": "devvm", "State": 2}\r\n', ""), "x") == {
        "Name": "devvm",
        "State": 2,
    }
    assert json_result(PsResult(0, "[1, 2]", ""), "x") == [1, 2]
    assert json_result(PsResult(0, "  \r\n", ""), "x") is None  # nothing printed


def test_a_failure_names_what_failed_and_redacts_known_secrets() -> None:
    secret = Secret("s3cr3t-Value-for-test")
    message = f"New-LocalUser : the password {secret.reveal()} does not meet the policy"
    with pytest.raises(HostCommandError) as caught:
        json_result(PsResult(1, "", message + "\r\n"), "create the account 'vmshare'")
    assert str(caught.value).startswith(
        "could not create the account 'vmshare' on the Windows host:"
    )
    assert secret.reveal() not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(HostCommandError, match=r"exit code 3"):
        json_result(PsResult(3, "", ""), "removing the share")
    with pytest.raises(HostCommandError, match="on the Windows host: a warning"):
        json_result(PsResult(0, "{}", "a warning"), "error stream with exit 0")


def test_output_that_is_not_json_is_an_error_that_does_not_echo_it() -> None:
    with pytest.raises(HostCommandError, match="not JSON") as caught:
        json_result(PsResult(0, "Name : devvm-private-output", ""), "listing VMs")
    assert "devvm-private-output" not in str(caught.value)


def test_only_the_message_line_is_shown_not_the_echoed_script_line() -> None:
    stderr = "Access is denied.\r\nAt line:12 char:1\r\n+ $password = 'hunter2-not-shown'\r\n"
    with pytest.raises(HostCommandError) as caught:
        json_result(PsResult(1, "", stderr), "create the account")
    assert (
        str(caught.value) == "could not create the account on the Windows host: Access is denied."
    )
    assert "hunter2" not in str(caught.value)
