"""The ssh guest channel, for real: OpenSSH on the host to dropbear in a guest of its own.

What every channel does (argv, stdin, output, exit codes, deadlines) is the contract in
tests/contract/channel.py (test_channel_ssh.py); here what only ssh has.
"""

from __future__ import annotations

import pytest
from tests.testbed.domain import agent_exec
from tests.testbed.fixtures import SshGuest, Vmshare, make_tree, tree_digest

from vmshare.guest.ssh import SshChannel

pytestmark = pytest.mark.integration


def test_unknown_host_key_is_refused(ssh_guest: SshGuest, tmp_path):
    from vmshare.errors import GuestError

    access = ssh_guest.access
    (tmp_path / "empty").write_text("")
    stranger = access.model_copy(update={"ssh_known_hosts": str(tmp_path / "empty")})
    with pytest.raises(GuestError, match=r"ssh to 127\.0\.0\.1 port \d+ failed") as info:
        SshChannel(stranger).run(["true"])
    assert "known_hosts" in info.value.hint
    assert info.value.never_ran  # refused before login: no command reached the guest


def test_a_share_through_the_ssh_channel(ssh_guest: SshGuest, tmp_path):
    dom, access, name = ssh_guest.dom, ssh_guest.access, ssh_guest.name
    src = make_tree(tmp_path / "src")
    spec = tmp_path / "vmshare.toml"
    spec.write_text(
        f'[vm.{name}]\nbackend = "libvirt"\n\n[vm.{name}.guest]\nchannel = "ssh"\n'
        f'ssh_host = "127.0.0.1"\nssh_port = {access.ssh_port}\nssh_key = "{access.ssh_key}"\n'
        f'ssh_known_hosts = "{access.ssh_known_hosts}"\n\n'
        f'[[share]]\nsource = "{src}"\nvm = "{name}"\ntarget = "/mnt/viassh"\n'
    )
    vmshare = Vmshare(tmp_path / "state")
    vmshare("apply", "-f", str(spec), check=True)
    assert agent_exec(dom, ["cat", "/mnt/viassh/hello.txt"])[1] == b"hello from the host\n"
    assert vmshare.json("status")["ok"]
    before = tree_digest(src)
    vmshare("remove", f"{name}:/mnt/viassh", check=True)
    assert b"/mnt/viassh" not in agent_exec(dom, ["cat", "/proc/mounts"])[1]
    assert tree_digest(src) == before
