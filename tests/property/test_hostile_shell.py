"""Guest argv and shell: what vmshare hands a guest shell (guest/ssh.py remote_command, used by
the ssh, vmrun and VMware Tools channels), the ssh argv, the guest mount argv, and the constant
busybox sh scripts of guest/linux.py, which take every value as a positional parameter.

Parsed back by real shells (dash as sh, and busybox sh as in the test guest): the argv comes back
element for element and no value runs as a command (a canary file would appear). argv lists are
checked without shlex: each value is exactly one element, never in an option position."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.property import hostile
from vmshare.errors import GuestError, UsageError
from vmshare.formats import fstab
from vmshare.guest import linux
from vmshare.guest.channel import GuestResult
from vmshare.guest.linux import LinuxGuest, mount_argv
from vmshare.guest.ssh import remote_command, ssh_argv
from vmshare.spec import GuestAccess
from vmshare.testing import LocalChannel

RENDERER_SH, RENDERER_SSH, RENDERER_MOUNT = "guest shell command", "ssh argv", "guest mount argv"
RENDERER_SCRIPTS = "guest sh scripts"
CANARY = "/tmp/vmshare-hostile-canary"
SHELLS = [["sh"], ["busybox", "sh"]]
# values with a command in them, so that one that ran would leave the canary behind
ATTACKS = [f"$(touch {CANARY})", f"`touch {CANARY}`", f";touch {CANARY};", f"'\"; touch {CANARY} #"]
argument = st.one_of(hostile.text, st.sampled_from(ATTACKS))
SCRIPTS = {
    value for name, value in vars(linux).items() if name.isupper() and isinstance(value, str)
}


@pytest.fixture(autouse=True)
def _no_canary():
    Path(CANARY).unlink(missing_ok=True)
    yield
    assert not Path(CANARY).exists(), "a hostile value ran as a command"


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(argument, max_size=5), shell=st.sampled_from(SHELLS))
@example(argv=[*ATTACKS, "-rf", "", "‘x’", "a\nb"], shell=["busybox", "sh"])
def test_remote_command_splits_back_into_the_argv(argv, shell):
    hostile.tally(RENDERER_SH)
    full = ["printf", "%s\\0", "x", *argv]
    try:
        command = remote_command(full)
    except GuestError:
        assert any("\0" in a for a in argv)
        return
    # ssh hands the string to the login shell; VMware Tools runs '"/bin/sh" ARGUMENTS' through
    # /bin/sh with ARGUMENTS = the command without its leading "sh " (guestops, vmrun channel)
    tools = remote_command(["sh", "-c", 'exec "$@"', "sh", *full]).removeprefix("sh ")
    for line in (command, '"/bin/sh" ' + tools):
        out = subprocess.run([*shell, "-c", line], capture_output=True, check=True, timeout=30)
        assert out.stdout.split(b"\0")[:-1] == [a.encode() for a in ["x", *argv]]
        assert not Path(CANARY).exists()


ssh_value = st.one_of(hostile.text, st.sampled_from(["-oProxyCommand=x", "host", "u@h"]))


@given(host=ssh_value, user=ssh_value, key=ssh_value, known=ssh_value, port=st.integers(1, 65535))
@example(host="-oProxyCommand=touch /tmp/x", user="root", key="/k", known="/kh", port=22)
@example(host="h", user="root", key="/k", known="/a -oProxyCommand=x", port=22)
def test_ssh_argv_keeps_each_setting_in_its_value_position(host, user, key, known, port):
    hostile.tally(RENDERER_SSH)
    try:
        access = GuestAccess(
            ssh_host=host, ssh_user=user, ssh_key=key, ssh_known_hosts=known, ssh_port=port
        )
    except ValueError:  # refused up front, with its message (pydantic's ValidationError)
        values = [host, user, key, known]
        assert (
            any(v.startswith("-") for v in values)
            or any(ord(c) < 32 or c == "\x7f" for c in "".join(values))
            or any(c.isspace() for c in known)
        )
        return
    if not host:
        with pytest.raises(GuestError):
            ssh_argv(access, ["true"])
        return
    argv = ssh_argv(access, ["true"])
    end = argv.index("--")
    assert argv[end + 1 :] == [host, "true"]
    options = argv[1:end]
    # every element before "--" is an option vmshare wrote, then its value
    assert all(flag in ("-o", "-p", "-i", "-l") for flag in options[::2]), options
    pairs = list(zip(options[::2], options[1::2], strict=True))
    assert ("-l", user) in pairs and ("-p", str(port)) in pairs
    assert (("-i", key) in pairs) == bool(key)
    assert (("-o", f"UserKnownHostsFile={known}") in pairs) == bool(known)
    assert ("-o", "StrictHostKeyChecking=yes") in pairs


mount_value = st.one_of(hostile.text, st.sampled_from(["-oremount", "--bind", "-"]))


@given(
    source=mount_value,
    target=mount_value,
    fstype=st.sampled_from(["nfs4", "cifs", "virtiofs", "vmhgfs", "fuse.vmhgfs-fuse", "9p"]),
    options=st.lists(st.from_regex(r"[A-Za-z0-9_.=:/+@-]{1,12}", fullmatch=True), min_size=1),
)
@example(source="-oremount", target="/mnt/x", fstype="nfs4", options=["rw"])
@example(source="//h/s", target="--bind", fstype="cifs", options=["rw"])
def test_mount_argv_keeps_source_and_target_out_of_option_positions(
    source, target, fstype, options
):
    hostile.tally(RENDERER_MOUNT)
    try:
        argv = mount_argv(source, target, fstype, options)
    except UsageError:
        assert source.startswith("-") or target.startswith("-") or not source or not target
        return
    joined = ",".join(options)
    program = {"cifs": "mount.cifs", "vmhgfs": "mount.vmhgfs", "fuse.vmhgfs-fuse": "vmhgfs-fuse"}
    if fstype in program:
        assert argv == [program[fstype], source, target, "-o", joined]
    else:
        assert argv == ["mount", "-t", fstype, "-o", joined, source, target]
    # in no option position: neither starts with '-'
    assert not source.startswith("-") and not target.startswith("-")


class Recorder:
    """A guest channel that records each argv and answers like an empty guest."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv, *, input=None, timeout=60):
        self.calls.append(list(argv))
        return GuestResult(0, b"", b"")


@given(target=hostile.path, source=hostile.nonempty, entry=st.sampled_from(["vmshare-ab12"]))
@example(target=f"/mnt/$(touch {CANARY})", source="h:/x", entry="vmshare-ab12")
def test_guest_scripts_are_constants_and_values_positional(target, source, entry):
    hostile.tally(RENDERER_SCRIPTS)
    # a guest path with NUL never reaches the guest: the spec refuses it (test_hostile_spec.py),
    # and argv cannot carry it
    assume("\x00" not in target)
    channel = Recorder()
    guest = LinuxGuest(channel, "vm")
    calls = [
        lambda: guest.inspect([target]),
        lambda: guest.mkdir(target),
        lambda: guest.rmdir_empty(target, [target + "/p"]),
        lambda: guest.probe(target, True),
        lambda: guest.probe(target, False),
        lambda: guest.remove_file(target),
        lambda: guest.unmount(target),
    ]
    for call in calls:
        with contextlib.suppress(UsageError, GuestError):
            call()
    for argv in channel.calls:
        if argv[:2] == ["sh", "-c"]:
            assert argv[2] in SCRIPTS  # the script itself is never built from a value
            assert argv[3] in ("vmshare", linux._SEPARATOR)
            # the target, its parent folders (inspect), a folder below it, a probe token
            # (or the target escaped as /proc/self/mounts shows it, to compare with that table)
            for value in argv[4:]:
                assert (
                    target.startswith(value)
                    or value.startswith(target)
                    or value == fstab.escape(target)
                    or len(value) == 16
                )
        else:
            assert argv[0] in ("mkdir", "umount")
            assert argv[-1] == target and argv[1:-1] in ([], ["-p"])


def _name(text: str) -> str:
    """A file name made of ``text``: no '/' or NUL, at most 200 bytes."""
    name = text.replace("/", "_").replace("\0", "_").encode()[:200].decode("utf-8", "ignore")
    return name if name not in ("", ".", "..") else "x" + name


@pytest.fixture(scope="module")
def busybox_path(tmp_path_factory):
    """A PATH of busybox applets only, as in the test guest's initramfs."""
    folder = tmp_path_factory.mktemp("busybox")
    busybox = shutil.which("busybox")
    for applet in subprocess.run(
        [busybox, "--list"], capture_output=True, text=True
    ).stdout.split():
        os.symlink(busybox, folder / applet)
    return str(folder)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(hostile.nonempty, st.sampled_from(ATTACKS)))
@example(name=f"x$(touch {CANARY})")
@example(name="-rf")
def test_guest_scripts_under_busybox_touch_only_the_named_folder(name, busybox_path, tmp_path):
    hostile.tally(RENDERER_SCRIPTS)
    root = tmp_path / "case"
    shutil.rmtree(root, ignore_errors=True)
    folder = root / _name(name)
    folder.mkdir(parents=True)
    (root / "bystander").write_text("keep")
    guest = LinuxGuest(LocalChannel(env={"PATH": busybox_path}), "vm")
    guest.probe(str(folder), True)  # writes, reads back and removes its probe file
    guest.probe(str(folder), False)
    assert list(folder.iterdir()) == []
    assert guest.rmdir_empty(str(folder)) is None
    assert not folder.exists()
    assert sorted(p.name for p in root.iterdir()) == ["bystander"]
