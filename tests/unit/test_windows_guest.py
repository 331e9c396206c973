"""The Windows guest skeleton: every script it builds parses (tree-sitter-powershell), hostile
names stay inside their literals, and a fake channel proves what it sends and how it maps
answers and errors. No Windows guest exists in the test bed yet: these tests are all it has."""

from __future__ import annotations

import base64
import json

import pytest
from test_powershell import parse, scan

from vmshare import core
from vmshare.backends.fake import FakeBackend, FakeVm
from vmshare.errors import GuestError, UsageError
from vmshare.facts import Capabilities
from vmshare.formats import powershell as ps
from vmshare.guest import guest_for
from vmshare.guest.channel import GuestResult
from vmshare.guest.linux import LinuxGuest
from vmshare.guest.windows import (
    CREDENTIALS_DIR,
    MAPPINGS_DIR,
    MAX_COMMAND_LINE,
    WindowsGuest,
    guest_file,
    plan_source,
    unc_path,
    windows_path,
)
from vmshare.plan.step import ACTIONS
from vmshare.secrets import SecretStore
from vmshare.spec import GuestAccess, vm_settings
from vmshare.state import StateStore

CRED = "/etc/vmshare/vmshare-0123456789abcdef.cred"
OPTIONS = ["rw", f"credentials={CRED}", "vers=3.1.1", "uid=1000", "gid=1000", "seal"]
ENTRY = "vmshare-0123456789abcdef"

BENIGN = {"folder": "C:\\mnt\\src", "source": "//10.0.2.2/vmshare-src", "account": "vmshare"}
HOSTILE = [
    {
        "folder": "C:\\mnt\\it's \u2018a\u2019 \u201ab\u201b $(Remove-Item C -Recurse) `n;x",
        "source": "//10.0.2.2/it's$(calc)`n\u2018x\u2019",
        "account": "DOM\\o'brien $(Get-Secret) `whoami` \u201b;",
    },
    {
        "folder": "C:\\mnt\\'@ @' ; & Out-File x \u4e2d\u6587 \U0001f600 ${env%PATH} '",
        "source": "//host-1.example/share'''",
        "account": "'''",
    },
]


def scripts(values: dict[str, str]) -> list[str]:
    folder, source, account = values["folder"], values["source"], values["account"]
    parent = folder.rsplit("\\", 1)[0]
    lines = [
        WindowsGuest.inspect_lines([folder, "X:"]),
        WindowsGuest.rmdir_lines(folder, [parent]),
        WindowsGuest.mount_lines(source, folder, OPTIONS, persistent=False),
        WindowsGuest.mount_lines(source, "X:", OPTIONS, persistent=False),
        WindowsGuest.probe_lines(folder, True, "0123abcd"),
        WindowsGuest.probe_lines(folder, False, "0123abcd"),
        WindowsGuest.fstab_add_lines(ENTRY, source, folder, OPTIONS),
        WindowsGuest.fstab_remove_lines(ENTRY),
        WindowsGuest.write_credentials_lines(CRED, account),
        WindowsGuest.remove_file_lines(CRED),
    ]
    return [WindowsGuest.script(body) for body in lines]


@pytest.mark.parametrize("values", [BENIGN, *HOSTILE])
def test_every_script_parses_and_fits_an_encoded_command(values):
    for text in scripts(values):
        root = parse(text)
        assert not root.has_error, text
        ps.encoded_command(text, "powershell.exe", MAX_COMMAND_LINE)


@pytest.mark.parametrize("values", HOSTILE)
def test_hostile_names_change_nothing_outside_their_literals(values):
    swap = {
        BENIGN["folder"]: windows_path(values["folder"]),
        BENIGN["folder"].rsplit("\\", 1)[0]: windows_path(values["folder"]).rsplit("\\", 1)[0],
        unc_path(BENIGN["source"]): unc_path(values["source"]),
        plan_source(unc_path(BENIGN["source"])): plan_source(unc_path(values["source"])),
        BENIGN["account"]: values["account"],
    }
    for plain, evil in zip(scripts(BENIGN), scripts(values), strict=True):
        plain_literals, plain_skeleton = scan(plain)
        evil_literals, evil_skeleton = scan(evil)
        assert evil_skeleton == plain_skeleton
        assert evil_literals == [swap.get(v, v) for v in plain_literals]


@pytest.mark.parametrize(
    "path",
    [
        "mnt\\src",
        "/mnt/src",
        "\\\\server\\share",
        "\\\\?\\C:\\x",
        "C:",
        "C:\\",
        "C:\\a\\..\\Windows",
        "C:\\a\\.\\b",
        "C:\\a\\\\b",
        "C:\\a\\b.",
        'C:\\a"b',
        "C:\\a|b",
        "C:\\a/b",
        "C:\\a:stream",
        "C:\\a\nb",
        "C:\\a\0b",
        "C:\\a\u202eb",
        "CC:\\x",
    ],
)
def test_bad_windows_targets_are_refused(path):
    if path in ("C:", "C:\\"):
        assert windows_path(path) == "C:"  # a drive is a valid target
        return
    with pytest.raises(UsageError):
        windows_path(path)


def test_windows_paths_keep_their_spelling():
    assert windows_path("x:") == "X:"
    assert windows_path("D:\\") == "D:"
    assert windows_path("C:\\mnt\\src\\") == "C:\\mnt\\src"
    assert windows_path("C:\\it's $x") == "C:\\it's $x"


@pytest.mark.parametrize(
    "source", ["//h", "//h/s/deeper", "/h/s", "//h a/s", "//h/s:x", "//h/", "//h/s\n"]
)
def test_bad_smb_sources_are_refused(source):
    with pytest.raises(UsageError):
        unc_path(source)


def test_plan_files_move_to_programdata():
    assert guest_file(CRED) == CREDENTIALS_DIR + "\\vmshare-0123456789abcdef.cred"
    with pytest.raises(UsageError):
        guest_file("/etc/vmshare/../passwd x")


# ------------------------------------------------------------------- a fake channel


class FakeChannel:
    name = "fake"

    def __init__(self, *answers: GuestResult) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], bytes | None]] = []

    def run(self, argv, *, input=None, timeout=60):
        self.calls.append((list(argv), input))
        return self.answers.pop(0) if self.answers else GuestResult(0, b"", b"")

    def script(self, index: int = -1) -> str:
        argv = self.calls[index][0]
        return base64.b64decode(argv[-1]).decode("utf-16-le")


def ok(data: object) -> GuestResult:
    return GuestResult(0, b"noise from a profile\n" + json.dumps(data).encode(), b"")


def test_scripts_run_as_an_encoded_powershell_command():
    channel = FakeChannel()
    WindowsGuest(channel, "win").mkdir("C:\\mnt\\src")
    argv, stdin = channel.calls[0]
    assert argv[:4] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert len(argv) == 5 and stdin is None
    text = channel.script()
    assert "[System.IO.Directory]::CreateDirectory($path)" in text
    assert scan(text)[0] == ["Stop", "SilentlyContinue", "C:\\mnt\\src"]


def test_a_drive_target_needs_no_folder():
    channel = FakeChannel()
    WindowsGuest(channel, "win").mkdir("X:")
    assert channel.calls == []


def test_inspect_maps_the_answer_to_guest_facts():
    answer = {
        "mappings": [
            {"LocalPath": "x:", "RemotePath": "\\\\10.0.2.2\\vmshare-a", "Status": 0},
            {"LocalPath": "", "RemotePath": "\\\\10.0.2.2\\vmshare-b", "Status": 0},
        ],
        "links": {"C:\\mnt\\b": "\\\\10.0.2.2\\vmshare-b"},
        "dirs": ["C:\\mnt\\b", "C:\\mnt"],
        "entries": {ENTRY: {"source": "//10.0.2.2/vmshare-b", "target": "C:\\mnt\\b"}},
        "gateway": "10.0.2.2",
    }
    channel = FakeChannel(ok(answer))
    facts = WindowsGuest(channel, "win").inspect(["C:\\mnt\\b", "X:"])
    assert facts.reachable and facts.channel == "fake"
    assert facts.mounts["X:"].source == "//10.0.2.2/vmshare-a"
    assert facts.mounts["C:\\mnt\\b"].source == "//10.0.2.2/vmshare-b"
    assert set(facts.mounts) == {"X:", "C:\\mnt\\b"}
    assert list(facts.fstab_entries) == [ENTRY]
    assert facts.existing_dirs == ["C:\\mnt\\b", "C:\\mnt"]
    assert facts.gateway == "10.0.2.2"
    literals = scan(channel.script())[0]
    assert literals[2:4] == ["C:\\mnt\\b", "C:\\mnt"]  # the folders asked about
    assert MAPPINGS_DIR in literals


def test_a_single_mapping_answer_is_not_a_list():
    one = {"LocalPath": "Y:", "RemotePath": "\\\\h\\s", "Status": 0}
    channel = FakeChannel(ok({"mappings": one, "links": {}, "dirs": [], "entries": {}}))
    assert WindowsGuest(channel, "win").inspect([]).mounts["Y:"].source == "//h/s"


def test_an_answer_that_is_not_json_is_a_guest_error():
    channel = FakeChannel(GuestResult(0, b"Welcome!\n", b""))
    with pytest.raises(GuestError) as info:
        WindowsGuest(channel, "win").inspect([])
    assert "JSON" in info.value.message and info.value.hint


def test_a_failing_script_is_a_guest_error_with_its_one_line_and_a_hint():
    channel = FakeChannel(GuestResult(1, b"", b"Access is denied.\r\n"))
    with pytest.raises(GuestError) as info:
        WindowsGuest(channel, "win").mount("//h/s", "X:", "cifs", OPTIONS)
    assert info.value.message == "mapping X: in VM 'win' failed: Access is denied."
    assert "administrator" in (info.value.hint or "")


def test_mount_maps_with_the_credentials_file_and_never_a_password():
    channel = FakeChannel()
    WindowsGuest(channel, "win").mount("//10.0.2.2/vmshare-a", "X:", "cifs", OPTIONS)
    text = channel.script()
    literals = scan(text)[0]
    assert "\\\\10.0.2.2\\vmshare-a" in literals
    assert CREDENTIALS_DIR + "\\vmshare-0123456789abcdef.cred" in literals
    assert "New-SmbMapping -LocalPath $local -RemotePath $remote" in text
    assert "-Password $password -Persistent:$false" in text
    assert "ConvertTo-SecureString -String $sealed" in text  # DPAPI-sealed in the file


def test_fstab_add_maps_persistently_and_records_the_entry():
    channel = FakeChannel()
    WindowsGuest(channel, "win").fstab_add(ENTRY, "//h/s", "C:\\mnt\\s", "cifs", OPTIONS)
    text = channel.script()
    assert "-Persistent:$true" in text and "-Persistent:$false" not in text
    assert "New-Item -ItemType 'SymbolicLink' -Path $local -Value $remote" in text
    assert f"{MAPPINGS_DIR}\\{ENTRY}.json" in scan(text)[0]


def test_fstab_remove_forgets_the_mapping_for_the_next_logon():
    channel = FakeChannel()
    WindowsGuest(channel, "win").fstab_remove(ENTRY)
    assert "Remove-SmbMapping -Force:$true -UpdateProfile:$true" in channel.script()
    with pytest.raises(UsageError):
        WindowsGuest(channel, "win").fstab_remove("../x y")


def test_unmount_leaves_the_next_logon_alone():
    channel = FakeChannel()
    WindowsGuest(channel, "win").unmount("X:")
    assert "Remove-SmbMapping -Force:$true -UpdateProfile:$false" in channel.script()


def test_only_smb_mounts_on_windows_and_nothing_is_sent_otherwise():
    channel = FakeChannel()
    guest = WindowsGuest(channel, "win")
    with pytest.raises(GuestError):
        guest.mount("host:/export", "X:", "nfs", [])
    with pytest.raises(GuestError):
        guest.mount("//h/s", "X:", "cifs", ["rw"])  # no credentials file
    with pytest.raises(UsageError):
        guest.mount("//h/s", "C:\\a|b", "cifs", OPTIONS)
    assert channel.calls == []


def test_credentials_travel_on_stdin_only(tmp_path):
    secrets = SecretStore(tmp_path)
    password = secrets.get_or_create("smb-vmshare").reveal()
    channel = FakeChannel()
    WindowsGuest(channel, "win", secrets).write_credentials(CRED, "vmshare", "smb-vmshare")
    argv, stdin = channel.calls[0]
    assert stdin == password.encode()
    assert password not in channel.script() and password not in " ".join(argv)
    text = channel.script()
    assert "[Console]::In.ReadToEnd()" in text
    assert "ConvertFrom-SecureString -SecureString $secure" in text
    assert "'*S-1-5-18:(OI)(CI)F'" in text and "'/inheritance:r'" in text


def test_rmdir_empty_reports_the_folder_left():
    channel = FakeChannel(ok({"left": "C:\\mnt\\src"}), ok({"left": None}))
    guest = WindowsGuest(channel, "win")
    assert guest.rmdir_empty("C:\\mnt\\src", ["C:\\mnt"]) == (
        "left C:\\mnt\\src in the guest: it is not empty"
    )
    assert guest.rmdir_empty("C:\\mnt\\src") is None
    assert scan(channel.script(0))[0][2:4] == ["C:\\mnt\\src", "C:\\mnt"]


def test_probe_writes_a_random_token_and_reads_it_back():
    channel = FakeChannel()
    WindowsGuest(channel, "win").probe("X:", writable=True)
    text = channel.script()
    assert "[System.IO.File]::WriteAllText($f, $token)" in text
    assert "$got -ne $token" in text


def test_remove_file_takes_the_credentials_folder_with_its_last_file():
    channel = FakeChannel()
    WindowsGuest(channel, "win").remove_file(CRED)
    literals = scan(channel.script())[0]
    assert CREDENTIALS_DIR in literals


# ------------------------------------------------------------- choosing the guest code


def test_windows_guest_offers_every_guest_action():
    for action in ACTIONS["guest"]:
        assert callable(getattr(WindowsGuest, action)), action


def test_guest_for_chooses_by_os():
    channel = FakeChannel()
    assert isinstance(guest_for("linux", channel, "vm"), LinuxGuest)
    assert isinstance(guest_for("windows", channel, "vm"), WindowsGuest)


def test_guest_os_setting_defaults_to_auto():
    assert GuestAccess().os == "auto"
    assert GuestAccess(os="windows").os == "windows"
    with pytest.raises(ValueError):
        GuestAccess(os="macos")


class _Backend(FakeBackend):
    """Reports the guest OS ``guest_os``; counts the inspections."""

    def __init__(self, guest_os):
        super().__init__(FakeVm("vm", Capabilities(guest_os=guest_os), running=False))
        self.inspected = 0

    def inspect(self, vm):
        self.inspected += 1
        return super().inspect(vm)

    def guest_channel(self, vm):
        return FakeChannel()


@pytest.mark.parametrize(
    ("setting", "reported", "expected"),
    [
        ("auto", "windows", WindowsGuest),
        ("auto", "linux", LinuxGuest),
        ("linux", "windows", LinuxGuest),
        ("windows", "linux", WindowsGuest),
    ],
)
def test_session_picks_the_guest_code_from_the_setting_or_the_backends_fact(
    tmp_path, monkeypatch, setting, reported, expected
):
    backend = _Backend(reported)
    monkeypatch.setattr(core, "load_backend", lambda settings: backend)
    vm = vm_settings("vm", guest=GuestAccess(os=setting))
    session = core.Session({"vm": vm}, StateStore(tmp_path))
    assert isinstance(session.layer("guest", "vm"), expected)
    assert backend.inspected == (1 if setting == "auto" else 0)


def test_session_takes_the_guest_os_from_the_probe_it_already_made(tmp_path, monkeypatch):
    backend = _Backend("windows")
    monkeypatch.setattr(core, "load_backend", lambda settings: backend)
    session = core.Session({"vm": vm_settings("vm")}, StateStore(tmp_path))
    session.probe_vm("vm", [])  # not running: no guest probe
    assert isinstance(session.guest("vm"), WindowsGuest)
    assert backend.inspected == 1


def test_libvirt_reports_windows_from_libosinfo_metadata_else_linux():
    from vmshare.backends.libvirt.domain_xml import guest_os

    windows = (
        "<domain><metadata><libosinfo:libosinfo "
        'xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">'
        '<libosinfo:os id="http://microsoft.com/win/10"/></libosinfo:libosinfo></metadata>'
        "</domain>"
    )
    assert guest_os(windows) == "windows"
    assert guest_os(windows.replace("microsoft.com/win/10", "debian.org/debian/12")) == "linux"
    assert guest_os("<domain/>") == "linux"


def test_doctor_says_a_windows_guest_is_a_skeleton_and_runs_no_linux_checks(tmp_path, monkeypatch):
    from vmshare import doctor

    channel = FakeChannel(ok({"mappings": [], "links": {}, "dirs": [], "entries": {}}))

    class Windows(FakeBackend):
        def guest_channel(self, vm):
            return channel

    backend = Windows(FakeVm("win", Capabilities(guest_os="windows")))
    monkeypatch.setattr(core, "load_backend", lambda settings: backend)
    checks = doctor.diagnose_vm(StateStore(tmp_path), "win")
    assert [c.name for c in checks] == ["vm win", "guest channel", "guest os"]
    assert checks[-1].status == "warn" and "skeleton" in checks[-1].detail
    assert len(channel.calls) == 1  # the inspect script only: no sh -c
