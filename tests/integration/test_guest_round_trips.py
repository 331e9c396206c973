"""The Linux guest layer's round trips through the real guest agent: how many channel calls a
share's guest steps take (each is a guest-exec plus its polling), and that the calls saved keep
the steps' meaning (idempotent mount and unmount, fstab edits that never lose a change made
behind vmshare's back)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from tests.testbed.fixtures import Guest

from vmshare.backends.libvirt.agent import AgentChannel
from vmshare.guest.channel import GuestResult
from vmshare.guest.linux import LinuxGuest

pytestmark = pytest.mark.integration

TARGET = "/mnt/round trips"  # a space: /proc/self/mounts escapes it, the guard must match that
ENTRY = "vmshare-round-trips"


class Counting:
    """A channel that counts the calls it passes on."""

    name = "counting"

    def __init__(self, channel: AgentChannel) -> None:
        self.channel = channel
        self.calls: list[list[str]] = []

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        self.calls.append(list(argv))
        return self.channel.run(argv, input=input, timeout=timeout)


@pytest.fixture
def counted(guest: Guest) -> Iterator[tuple[LinuxGuest, Counting]]:
    channel = Counting(AgentChannel(lambda: guest.dom, guest.name))
    yield LinuxGuest(channel, guest.name), channel
    guest.sh(
        'umount "$1" 2>/dev/null; rmdir "$1" 2>/dev/null; '
        'grep -v "$2" /etc/fstab > /tmp/f; cat /tmp/f > /etc/fstab',
        TARGET,
        ENTRY,
    )


def mounts_of(guest: Guest, source: str) -> list[str]:
    """The /proc/self/mounts lines of ``source`` (stacked mounts each have one)."""
    lines = guest.read("/proc/self/mounts").decode().splitlines()
    return [line for line in lines if line.startswith(source + " ")]


def test_a_share_guest_steps_take_one_call_each_after_one_inspect(
    guest: Guest, counted: tuple[LinuxGuest, Counting]
) -> None:
    linux, channel = counted
    linux.inspect([TARGET])
    linux.mkdir(TARGET)
    linux.mount("vmshare-rt", TARGET, "tmpfs", ["size=1m"])
    linux.fstab_add(ENTRY, "vmshare-rt", TARGET, "tmpfs", ["size=1m"])
    linux.probe(TARGET, writable=True)
    # before: inspect, mkdir, inspect + mount, read + write fstab, probe = 7
    assert len(channel.calls) == 5, channel.calls
    assert guest.mounts()[TARGET][:2] == ("vmshare-rt", "tmpfs")
    escaped = TARGET.replace(" ", "\\040")
    assert f"vmshare-rt {escaped} tmpfs size=1m" in guest.fstab()

    del channel.calls[:]
    linux.mount("vmshare-rt", TARGET, "tmpfs", ["size=1m"])  # already there: kept, not stacked
    assert len(channel.calls) == 1
    assert len(mounts_of(guest, "vmshare-rt")) == 1

    del channel.calls[:]
    linux.fstab_remove(ENTRY)
    linux.unmount(TARGET)
    linux.unmount(TARGET)  # nothing mounted any more: a no-op, not an error
    assert linux.rmdir_empty(TARGET) is None
    # fstab from the copy this guest wrote, one call per step
    assert len(channel.calls) == 4, channel.calls
    assert TARGET not in guest.mounts()
    assert ENTRY not in guest.fstab()


def test_an_fstab_changed_behind_vmshare_is_read_again_and_the_change_kept(
    guest: Guest, counted: tuple[LinuxGuest, Counting]
) -> None:
    linux, channel = counted
    linux.inspect([TARGET])
    code, _, err = guest.sh('printf "%s\\n" "# $1 edited by hand" >> /etc/fstab', ENTRY)
    assert code == 0, err
    linux.fstab_add(ENTRY, "vmshare-rt", TARGET, "tmpfs", ["size=1m"])
    fstab = guest.fstab()
    assert f"# {ENTRY} edited by hand" in fstab  # the stale copy did not overwrite it
    assert "vmshare-rt" in fstab
    assert len(channel.calls) == 4  # inspect, a refused write, a fresh read, the write
