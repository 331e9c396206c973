"""The ssh guest channel, for real: OpenSSH on the host to dropbear in a guest of its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.testbed.domain import (
    agent_exec,
    authorize_ssh_key,
    boot_domain,
    destroy_domain,
    ssh_host_key,
)
from tests.testbed.servers import free_port

from conftest import URI, VM, Vmshare, make_tree, tree_digest
from vmshare.guest.ssh import SshChannel
from vmshare.spec import GuestAccess

pytestmark = pytest.mark.integration
NAME = f"{VM}-ssh"


@pytest.fixture(scope="module")
def ssh_guest(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("ssh")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = free_port()
    dom, _ = boot_domain(URI, NAME, Path("/var/tmp/vmshare-testbed") / NAME, ssh_port=port)
    try:
        authorize_ssh_key(dom, (work / "id_ed25519.pub").read_text())
        known_hosts = work / "known_hosts"
        known_hosts.write_text(ssh_host_key(dom))
        access = GuestAccess(
            channel="ssh",
            ssh_host="127.0.0.1",
            ssh_port=port,
            ssh_key=str(key),
            ssh_known_hosts=str(known_hosts),
        )
        yield dom, access
    finally:
        destroy_domain(URI, NAME)


HOSTILE = ["it's", 'dq"x', "$(touch /tmp/pwned)", "`id`", "a;b", "new\nline", "‘’", "", "-n"]


def test_ssh_channel_runs_argv_exactly_with_stdin_and_exit_code(ssh_guest):
    dom, access = ssh_guest
    channel = SshChannel(access)
    result = channel.run(["printf", "%s\\0", *HOSTILE])
    assert result.exit_code == 0
    assert result.stdout.split(b"\0")[:-1] == [h.encode() for h in HOSTILE]
    assert agent_exec(dom, ["test", "-e", "/tmp/pwned"])[0] != 0
    assert (
        channel.run(["sh", "-c", "cat; exit 7"], input=b"through stdin").stdout == b"through stdin"
    )
    assert channel.run(["sh", "-c", "exit 7"]).exit_code == 7


def test_unknown_host_key_is_refused(ssh_guest, tmp_path):
    from vmshare.errors import GuestError

    _, access = ssh_guest
    (tmp_path / "empty").write_text("")
    stranger = access.model_copy(update={"ssh_known_hosts": str(tmp_path / "empty")})
    with pytest.raises(GuestError, match=r"ssh to 127\.0\.0\.1 failed") as info:
        SshChannel(stranger).run(["true"])
    assert "known_hosts" in info.value.hint


def test_a_share_through_the_ssh_channel(ssh_guest, tmp_path):
    dom, access = ssh_guest
    src = make_tree(tmp_path / "src")
    spec = tmp_path / "vmshare.toml"
    spec.write_text(
        f'[vm.{NAME}]\nbackend = "libvirt"\n\n[vm.{NAME}.guest]\nchannel = "ssh"\n'
        f'ssh_host = "127.0.0.1"\nssh_port = {access.ssh_port}\nssh_key = "{access.ssh_key}"\n'
        f'ssh_known_hosts = "{access.ssh_known_hosts}"\n\n'
        f'[[share]]\nsource = "{src}"\nvm = "{NAME}"\ntarget = "/mnt/viassh"\n'
    )
    vmshare = Vmshare(tmp_path / "state")
    vmshare("apply", "-f", str(spec), check=True)
    assert agent_exec(dom, ["cat", "/mnt/viassh/hello.txt"])[1] == b"hello from the host\n"
    assert vmshare.json("status")["ok"]
    before = tree_digest(src)
    vmshare("remove", f"{NAME}:/mnt/viassh", check=True)
    assert b"/mnt/viassh" not in agent_exec(dom, ["cat", "/proc/mounts"])[1]
    assert tree_digest(src) == before


def test_a_command_past_its_deadline_raises_guest_timeout(ssh_guest):
    import time

    from vmshare.errors import GuestTimeout

    _, access = ssh_guest
    started = time.monotonic()
    with pytest.raises(GuestTimeout) as info:
        SshChannel(access).run(["sleep", "60"], timeout=2)
    assert time.monotonic() - started < 30
    assert info.value.may_still_run  # ssh is stopped; the remote command may go on
    assert "did not finish within 2 s" in info.value.message
