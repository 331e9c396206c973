"""The strings vmshare hands to a shell or to libvirt, checked by the real parsers."""

import subprocess
import xml.etree.ElementTree as ET

import pytest

from vmshare.backends.libvirt.domain_xml import filesystem_xml, filesystems, with_shared_memory
from vmshare.facts import FsDevice
from vmshare.guest.ssh import remote_command, ssh_argv, ssh_failure
from vmshare.spec import GuestAccess

HOSTILE = [
    "plain",
    "it's",
    'dq"x',
    "$(touch /tmp/vmshare-pwned)",
    "`touch /tmp/vmshare-pwned`",
    "a;b && c || d",
    "new\nline",
    "‘’‚‛ unicode quotes",
    "*?[glob]",
    "-rf",
    "back\\slash",
    "",
    "<xml attr='&amp;'>",
]


def test_remote_command_splits_back_into_the_same_argv_in_a_real_shell(tmp_path):
    argv = ["printf", "%s\\0", *HOSTILE]
    out = subprocess.run(
        ["sh", "-c", remote_command(argv)], capture_output=True, check=True, cwd=tmp_path
    ).stdout
    assert out.split(b"\0")[:-1] == [h.encode() for h in HOSTILE]
    assert not (tmp_path / "vmshare-pwned").exists()


def test_nul_cannot_reach_the_remote_shell():
    from vmshare.errors import GuestError

    with pytest.raises(GuestError):
        remote_command(["echo", "a\0b"])


def test_ssh_argv_ends_option_parsing_before_the_host():
    argv = ssh_argv(GuestAccess(ssh_host="guest.example", ssh_user="u"), ["true"])
    assert argv[argv.index("--") + 1] == "guest.example"
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv


def test_ssh_argv_uses_the_known_hosts_file_and_key():
    access = GuestAccess(ssh_host="127.0.0.1", ssh_port=2222, ssh_key="/k", ssh_known_hosts="/kh")
    argv = ssh_argv(access, ["true"])
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-i") + 1] == "/k"
    assert "UserKnownHostsFile=/kh" in argv


@pytest.mark.parametrize("field", ["ssh_host", "ssh_user", "ssh_key", "ssh_known_hosts"])
def test_ssh_settings_cannot_smuggle_options(field):
    with pytest.raises(ValueError):
        GuestAccess(**{field: "-oProxyCommand=touch /tmp/x"})


def test_known_hosts_path_with_spaces_is_refused():
    with pytest.raises(ValueError, match="spaces"):
        GuestAccess(ssh_known_hosts="/a b")


@pytest.mark.parametrize("path", [h for h in HOSTILE if "\n" not in h and h])
def test_filesystem_xml_round_trips_hostile_paths(path):
    device = FsDevice(tag="vmshare-abc", source=f"/srv/{path}", protocol="virtiofs", readonly=True)
    xml = filesystem_xml(device)
    element = ET.fromstring(xml)
    assert element.find("source").get("dir") == f"/srv/{path}"
    assert len(list(element)) == 4  # driver, source, target, readonly: nothing injected
    domain = f"<domain><devices>{xml}</devices></domain>"
    assert filesystems(domain)["vmshare-abc"][0] == device


def test_9p_device_is_mapped_and_has_no_virtiofs_driver():
    xml = filesystem_xml(FsDevice(tag="t", source="/s", protocol="9p", readonly=False))
    element = ET.fromstring(xml)
    assert element.get("accessmode") == "mapped" and element.find("driver") is None


def test_shared_memory_is_added_once_and_keeps_other_settings():
    domain = (
        "<domain type='qemu'><name>v</name><memory>262144</memory>"
        "<memoryBacking><hugepages/></memoryBacking><devices/></domain>"
    )
    once = with_shared_memory(domain)
    twice = with_shared_memory(once)
    root = ET.fromstring(twice)
    backing = root.find("memoryBacking")
    assert backing.find("hugepages") is not None
    assert backing.find("access").get("mode") == "shared"
    assert len(backing.findall("source")) == 1 and len(backing.findall("access")) == 1
    fresh = ET.fromstring(with_shared_memory("<domain><memory>1</memory><devices/></domain>"))
    assert [child.tag for child in fresh] == ["memory", "memoryBacking", "devices"]


def test_an_ssh_failure_is_one_line_and_a_silent_guest_is_not_a_key_problem():
    """What OpenSSH printed when the Hyper-V fault test froze the guest mid-add."""
    access = GuestAccess(ssh_host="127.0.0.1", ssh_port=48351)
    said = (
        "Connection timed out during banner exchange\r\n"
        "Connection to 127.0.0.1 port 48351 timed out\r\n"
    )
    error = ssh_failure(access, said)
    assert "\n" not in error.message and "\r" not in error.message
    assert error.message.endswith("banner exchange; Connection to 127.0.0.1 port 48351 timed out")
    assert "not paused" in (error.hint or "") and "ssh_key" not in (error.hint or "")
    refused = ssh_failure(access, "Permission denied (publickey).\n")
    assert "ssh_key" in (refused.hint or "")
    # no command reached the guest: the executor will not undo the step; a connection lost
    # mid-command may have run it
    lost = ssh_failure(access, "Timeout, server 127.0.0.1 not responding.\n")
    assert error.never_ran and refused.never_ran and not lost.never_ran
