"""PowerShell generation: hostile values stay inside their literals, scripts parse, errors map.

Two checkers, because neither is enough alone:
- tree-sitter-powershell parses whole scripts (unterminated strings and blocks), but it knows
  only the ASCII ' as a quote;
- ``scan`` follows PowerShell's own rule for single-quoted strings (five quote characters, a
  doubled quote is one literal quote) and returns each literal's decoded value plus the script's
  skeleton, the code outside the literals.
"""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.testbed.wsman.commandline import uncaught_error

from vmshare.errors import HostCommandError, UsageError
from vmshare.formats import powershell as ps
from vmshare.formats.clixml import plain_stderr
from vmshare.formats.powershell import PsResult, Var
from vmshare.protocols.smb_windows import WindowsSmbExporter, validate_share_name

QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'

HOSTILE = [
    "plain",
    "",
    "it's",
    "''",
    "'''",
    "\u2018left\u2019 \u201alow\u201b",
    "\u2018; Remove-Item C:\\ -Recurse; \u2018",
    "'\u2018\u2019\u201a\u201b'",
    'dq"x\u201cy\u201dz\u201e',
    "$(Remove-Item C:\\ -Recurse)",
    "$env:USERNAME ${x} $x",
    "`whoami` `n `$ tick`",
    "a;b && c || d | Out-File x",
    "new\nline",
    "cr\rreturn\r\n",
    "tab\there",
    "@'\nhere\n'@",
    '@"\nhere\n"@',
    "'@\n",
    "<# comment #> # comment",
    "\u2013dash \u2014Force",
    "unicode: \u00e9\u00e8 \u4e2d\u6587 \U0001f600 \u2028\u2029",
    "back\\slash\\",
    "x" * 2000,
]


class ScanError(Exception):
    pass


def scan(script: str) -> tuple[list[str], str]:
    """Decode every single-quoted literal; refuse any other kind of string boundary."""
    literals: list[str] = []
    skeleton: list[str] = []
    i = 0
    while i < len(script):
        c = script[i]
        if c in QUOTES:
            j, value = i + 1, []
            while True:
                if j >= len(script):
                    raise ScanError(f"unterminated literal at {i}")
                if script[j] in QUOTES:
                    if j + 1 < len(script) and script[j + 1] in QUOTES:
                        if script[j] != script[j + 1]:  # which one PowerShell keeps: unclear
                            raise ScanError(f"mixed quote pair at {j}")
                        value.append(script[j])
                        j += 2
                        continue
                    break
                value.append(script[j])
                j += 1
            literals.append("".join(value))
            skeleton.append("'?'")
            i = j + 1
            continue
        if c in DOUBLE_QUOTES:
            raise ScanError(f"expandable string at {i}")
        if c in "`#":
            raise ScanError(f"escape or comment outside a literal at {i}")
        if c == "@" and i + 1 < len(script) and script[i + 1] in QUOTES:
            raise ScanError(f"here-string at {i}")
        skeleton.append(c)
        i += 1
    return literals, "".join(skeleton)


def parse(script: str):
    tree_sitter = pytest.importorskip("tree_sitter")
    tsp = pytest.importorskip("tree_sitter_powershell")
    parser = tree_sitter.Parser(tree_sitter.Language(tsp.language()))
    return parser.parse(script.encode("utf-8")).root_node


def string_literals(node) -> list[str]:
    found = [node.text.decode("utf-8")] if node.type == "string_literal" else []
    for child in node.children:
        found += string_literals(child)
    return found


# The scanner itself: it must be able to fail.


def naive_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def test_scanner_catches_a_quote_function_that_forgets_unicode_quotes():
    value = "\u2018; Remove-Item C:\\ -Recurse; \u2018"
    literals, skeleton = scan("Write-Output " + naive_quote(value))
    assert literals != [value]
    assert "Remove-Item" in skeleton


@pytest.mark.parametrize(
    "script", ["'open", "'a' \"b\"", "'a' `$x", "@'\nx\n'@", "'a' # c", "'\u2018'"]
)
def test_scanner_refuses_other_string_boundaries(script):
    with pytest.raises(ScanError):
        scan(script)


# quote


@pytest.mark.parametrize("value", HOSTILE)
def test_quote_round_trips_exactly_as_one_literal(value):
    assert scan(ps.quote(value)) == ([value], "'?'")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_argument_is_one_string_token(value):
    line = ps.command("Write-Output", value)
    assert scan(line) == ([value], "Write-Output '?'")
    root = parse(line)
    assert not root.has_error
    assert string_literals(root) == [ps.quote(value)]


@pytest.mark.parametrize("quote_char", list(QUOTES))
def test_every_single_quote_character_is_doubled(quote_char):
    assert ps.quote(f"a{quote_char}b") == f"'a{quote_char}{quote_char}b'"


def test_nul_is_refused_without_echoing_the_value():
    with pytest.raises(UsageError) as info:
        ps.quote("s3cret\0tail")
    assert "s3cret" not in str(info.value)
    assert info.value.hint


def test_lone_surrogate_is_refused():
    with pytest.raises(UsageError):
        ps.quote("bad\udcff")


# command and friends


def test_command_renders_each_value_type():
    line = ps.command(
        "New-Thing",
        "pos",
        Name="x",
        Force=True,
        Hidden=False,
        Count=3,
        Offset=-2,
        Tags=["a", "b'c"],
        Empty=[],
        Ref=Var("path"),
        Skipped=None,
    )
    assert line == (
        "New-Thing 'pos' -Name 'x' -Force:$true -Hidden:$false -Count 3 -Offset (-2) "
        "-Tags @('a','b''c') -Empty @() -Ref $path"
    )
    assert not parse(line).has_error


@pytest.mark.parametrize("name", ["Name -Path", "Name'", "", "1st", "Na$me", "Náme"])
def test_parameter_names_are_validated(name):
    with pytest.raises(ValueError):
        ps.command("Get-Item", **{name: "x"})


@pytest.mark.parametrize("cmdlet", ["Get-Item; calc", "", "Get-Item 'x'", "$(x)", "a b"])
def test_cmdlet_names_are_validated(cmdlet):
    with pytest.raises(ValueError):
        ps.command(cmdlet)


@pytest.mark.parametrize("name", ["x y", "$x", "a-b", ""])
def test_variable_names_are_validated(name):
    with pytest.raises(ValueError):
        Var(name)


def test_script_stops_on_errors_and_reports_only_the_message():
    text = ps.script(ps.assign("v", "it's"))
    assert text.splitlines()[0] == "$ErrorActionPreference = 'Stop'"
    assert "[Console]::Error.WriteLine($_.Exception.Message)" in text
    assert "exit 1" in text
    assert not parse(text).has_error


# encoded_command


def test_encoded_command_carries_the_script_as_utf16le_base64():
    text = ps.script(ps.command("Write-Output", "\u4e2d \U0001f600 it's"))
    argv = ps.encoded_command(text)
    assert argv[:4] == ["powershell", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert len(argv) == 5
    assert base64.b64decode(argv[4]).decode("utf-16-le") == text


def test_encoded_command_limit_is_the_cmd_exe_line_length():
    fits = 0
    while True:  # the longest 'x' * n that fits
        try:
            ps.encoded_command("x" * (fits + 1))
        except UsageError:
            break
        fits += 1
    longest = len(" ".join(ps.encoded_command("x" * fits)))
    assert ps.MAX_COMMAND_LINE - 4 < longest <= ps.MAX_COMMAND_LINE


def test_overlong_script_is_refused_without_echoing_it():
    text = ps.script(ps.assign("password", "hunter2-" + "x" * 4000))
    with pytest.raises(UsageError) as info:
        ps.encoded_command(text)
    assert "hunter2" not in str(info.value)
    assert "8191" in str(info.value)


# LocalPowerShell


def test_local_powershell_missing_gives_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HostCommandError) as info:
        ps.LocalPowerShell().run("Write-Output 1")
    assert "pwsh" in (info.value.hint or "")


def test_local_powershell_runs_pwsh_with_the_encoded_script(tmp_path, monkeypatch):
    fake = tmp_path / "pwsh"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\necho "boom" >&2\nexit 3\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    text = ps.script(ps.command("Write-Output", "it's"))
    result = ps.LocalPowerShell().run(text, timeout=10)
    args = result.stdout.splitlines()
    assert args[:3] == ["-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert base64.b64decode(args[3]).decode("utf-16-le") == text
    assert (result.exit_code, result.stderr) == (3, "boom\n")


# WindowsSmbExporter scripts

BENIGN = ("data", "C:\\data", "HOST\\vm")
HOSTILE_SHARES = [
    ("it's", "C:\\it's\\$(calc)", "DOM\\o'brien"),
    ("\u2018x\u2019\u201a\u201b", "C:\\\u2018; calc; \u2018", "x\u2018; Remove-Item C:\\; \u2018"),
    ("$(calc)`n@'", "C:\\new\nline\\`$x\\@'\n'@", "$(Get-Secret)"),
    ("a" * 80, "C:\\" + "p" * 250, "DOMAIN\\" + "u" * 100),
]


def all_scripts(exporter, name, path, account):
    return [
        exporter.share_script(name, path, account, True),
        exporter.share_script(name, path, account, False),
        exporter.unshare_script(name),
        exporter.exists_script(name),
    ]


@pytest.mark.parametrize(("name", "path", "account"), [BENIGN, *HOSTILE_SHARES])
def test_share_scripts_parse_and_fit(name, path, account):
    for text in all_scripts(WindowsSmbExporter(Recorder()), name, path, account):
        assert not parse(text).has_error, text
        ps.encoded_command(text)


@pytest.mark.parametrize(("name", "path", "account"), HOSTILE_SHARES)
def test_hostile_share_values_change_nothing_outside_their_literals(name, path, account):
    exporter = WindowsSmbExporter(Recorder())
    benign = all_scripts(exporter, *BENIGN)
    hostile = all_scripts(exporter, name, path, account)
    for plain, evil in zip(benign, hostile, strict=True):
        plain_literals, plain_skeleton = scan(plain)
        evil_literals, evil_skeleton = scan(evil)
        assert evil_skeleton == plain_skeleton
        swap = {"data": name, "C:\\data": path, "HOST\\vm": account}
        assert evil_literals == [swap.get(v, v) for v in plain_literals]


def lines_with(text: str, cmdlet: str) -> list[str]:
    return [line for line in text.splitlines() if cmdlet in line]


def test_readonly_share_grants_read_only():
    text = WindowsSmbExporter(Recorder()).share_script(*BENIGN, readonly=True)
    (new,) = lines_with(text, "New-SmbShare")
    assert "-ReadAccess $account" in new
    assert "FullAccess" not in text and "ChangeAccess" not in text
    (grant,) = lines_with(text, "Grant-SmbShareAccess")
    assert "-AccountName $account -AccessRight 'Read'" in grant


def test_readwrite_share_grants_full_access():
    text = WindowsSmbExporter(Recorder()).share_script(*BENIGN, readonly=False)
    (new,) = lines_with(text, "New-SmbShare")
    assert "-FullAccess $account" in new
    assert "ReadAccess" not in text
    (grant,) = lines_with(text, "Grant-SmbShareAccess")
    assert "-AccessRight 'Full'" in grant


def test_share_is_encrypted_uncached_and_access_based():
    text = WindowsSmbExporter(Recorder()).share_script(*BENIGN, readonly=False)
    for line in lines_with(text, "New-SmbShare") + lines_with(text, "Set-SmbShare"):
        assert "-EncryptData:$true" in line
        assert "-FolderEnumerationMode 'AccessBased'" in line
        assert "-CachingMode 'None'" in line


def test_everyone_is_never_granted_and_is_revoked_after_the_grant():
    text = WindowsSmbExporter(Recorder()).share_script(*BENIGN, readonly=True)
    lines = text.splitlines()
    for line in lines_with(text, "New-SmbShare") + lines_with(text, "Grant-SmbShareAccess"):
        assert "everyone" not in line.lower()
    (revoke,) = lines_with(text, "Revoke-SmbShareAccess")
    assert "-AccountName $everyone" in revoke
    assert lines.index(revoke) > lines.index(lines_with(text, "Grant-SmbShareAccess")[0])
    # Resolved from the SID, so a localised "Jeder" or "Tout le monde" is revoked too.
    assert "'S-1-1-0'" in text


@pytest.mark.parametrize(
    "account", ["Everyone", "everyone", " EVERYONE ", "S-1-1-0", "X\\Everyone"]
)
def test_everyone_as_the_account_is_refused(account):
    with pytest.raises(UsageError):
        WindowsSmbExporter(Recorder()).share_script("data", "C:\\data", account, True)


@pytest.mark.parametrize("account", ["", "  ", "a\nb", "a\x7fb"])
def test_bad_account_is_refused(account):
    with pytest.raises(UsageError):
        WindowsSmbExporter(Recorder()).share_script("data", "C:\\data", account, True)


def test_existing_share_with_another_path_fails_and_same_path_converges():
    text = WindowsSmbExporter(Recorder()).share_script(*BENIGN, readonly=True)
    assert "if ($share.Path.TrimEnd('\\') -ne $path.TrimEnd('\\')) { throw" in text
    assert lines_with(text, "Set-SmbShare")


@pytest.mark.parametrize("path", ["data", "\\\\server\\share", "/c/data", "C:data", ""])
def test_share_path_must_be_absolute_local(path):
    with pytest.raises(UsageError):
        WindowsSmbExporter(Recorder()).share_script("data", path, "HOST\\vm", True)


def test_unshare_removes_only_when_present():
    text = WindowsSmbExporter(Recorder()).unshare_script("data")
    (remove,) = lines_with(text, "Remove-SmbShare")
    assert remove == "Remove-SmbShare -Name $name -Force:$true"
    assert lines_with(text, "if (Get-SmbShare | Where-Object")


# Share names


@pytest.mark.parametrize("name", ["a", "data$", "it's", "with space", "\u4e2d\u6587", "a" * 80])
def test_valid_share_names(name):
    assert validate_share_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a" * 81, "a\nb", "a\tb", "a\x00b", "a\x7f", "a\x85b", "C$", "admin$", "IPC$", "print$"]
    + [f"a{c}b" for c in '"/\\[]:|<>+=;,*?'],
)
def test_invalid_share_names(name):
    with pytest.raises(UsageError):
        validate_share_name(name)
    with pytest.raises(UsageError):
        WindowsSmbExporter(Recorder()).unshare_script(name)


# Running, through a recording runner


class Recorder:
    def __init__(self, *results: PsResult) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, float]] = []

    def run(self, script: str, *, timeout: float = 120) -> PsResult:
        self.calls.append((script, timeout))
        return self.results.pop(0)


OK = PsResult(0, "", "")


def test_export_runs_the_share_script():
    runner = Recorder(OK)
    exporter = WindowsSmbExporter(runner)
    exporter.export("data", "C:\\data", "HOST\\vm", readonly=True)
    assert [s for s, _ in runner.calls] == [exporter.share_script(*BENIGN, readonly=True)]


def test_unexport_runs_the_unshare_script():
    runner = Recorder(OK)
    exporter = WindowsSmbExporter(runner)
    exporter.unexport("data")
    assert [s for s, _ in runner.calls] == [exporter.unshare_script("data")]


@pytest.mark.parametrize(("stdout", "expected"), [("True\r\n", True), ("False\n", False)])
def test_exported_reads_the_answer(stdout, expected):
    runner = Recorder(PsResult(0, stdout, ""))
    exporter = WindowsSmbExporter(runner)
    assert exporter.exported("data") is expected
    assert [s for s, _ in runner.calls] == [exporter.exists_script("data")]


def test_exported_refuses_unexpected_output():
    with pytest.raises(HostCommandError):
        WindowsSmbExporter(Recorder(PsResult(0, "maybe\n", ""))).exported("data")


def test_failure_becomes_one_line_host_command_error():
    stderr = "\r\nAccess is denied.\r\nAt line:12 char:1\r\n+ $account = 'HOST\\vm'\r\n"
    runner = Recorder(PsResult(1, "", stderr))
    with pytest.raises(HostCommandError) as info:
        WindowsSmbExporter(runner).export("data", "C:\\data", "HOST\\vm", readonly=False)
    assert str(info.value) == (
        "could not share C:\\data as data on the Windows host: Access is denied."
    )
    assert "administrator" in (info.value.hint or "")


def test_an_uncaught_error_shows_its_own_message_and_powershells_hint():
    """What powershell.exe writes for an error no catch saw (the Hyper-V fault test's error
    stream), read back through CLIXML: its first line is the message, nothing of the record."""
    stderr = plain_stderr(
        uncaught_error(
            "New-SmbShare -Name $name",
            "The Server service is not started.",
            "NotSpecified: (MSFT_SMBShare) [New-SmbShare], CimException",
            "Windows System Error 2114,New-SmbShare",
        )
    )
    runner = Recorder(PsResult(1, "", stderr))
    with pytest.raises(HostCommandError) as info:
        WindowsSmbExporter(runner).export("data", "C:\\data", "HOST\\vm", readonly=False)
    assert str(info.value).endswith(": New-SmbShare : The Server service is not started.")
    assert "plan" in (info.value.hint or "") and "administrator" not in (info.value.hint or "")


@pytest.mark.parametrize(
    "call",
    [lambda e: e.unexport("data"), lambda e: e.exported("data")],
)
def test_failure_without_stderr_still_raises(call):
    with pytest.raises(HostCommandError, match="exit 5"):
        call(WindowsSmbExporter(Recorder(PsResult(5, "True\n", ""))))


def test_overlong_share_script_never_reaches_the_runner():
    runner = Recorder(OK)
    with pytest.raises(UsageError):
        WindowsSmbExporter(runner).export("data", "C:\\" + "p" * 4000, "HOST\\vm", readonly=True)
    assert runner.calls == []


# Property-based: any string, full of what PowerShell would read as code, stays one literal.

HOSTILE_PIECES = st.sampled_from(
    [
        *QUOTES,
        *DOUBLE_QUOTES,
        "$(",
        ")",
        "${",
        "$x",
        "`",
        ";",
        "|",
        "&",
        "\n",
        "\r",
        "@'",
        "#",
        "<#",
    ]
)
HOSTILE_TEXT = st.lists(
    HOSTILE_PIECES
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=4),
    max_size=12,
).map("".join)


@given(value=HOSTILE_TEXT)
@settings(max_examples=300, deadline=None)
def test_quote_round_trips_any_hostile_text(value):
    assert scan(ps.quote(value)) == ([value], "'?'")


@given(name=HOSTILE_TEXT, path=HOSTILE_TEXT)
@settings(max_examples=200, deadline=None)
def test_command_keeps_each_hostile_value_in_its_own_literal(name, path):
    literals, skeleton = scan(ps.command("Get-Thing", Name=name, LiteralPath=path, Force=True))
    assert literals == [name, path]
    assert skeleton == "Get-Thing -Name '?' -LiteralPath '?' -Force:$true"


@given(value=HOSTILE_TEXT)
@settings(max_examples=200, deadline=None)
def test_the_hyperv_stand_in_reads_back_exactly_the_value(value, tmp_path_factory):
    """The script parses (tree-sitter) and the stand-in's evaluator, following PowerShell's
    quote rule, gets the exact value back out of the literal."""
    from tests.testbed.hyperv import HyperVHost

    host = HyperVHost(tmp_path_factory.mktemp("w"))
    text = ps.script(
        ps.assign("v", value), ps.command("ConvertTo-Json", InputObject=Var("v"), Compress=True)
    )
    code, out, err = host.handle(text)
    assert (code, err) == (0, "")
    assert json.loads(out) == value
