"""The crash harness: `vmshare add` killed (SIGKILL) or interrupted (SIGINT) at every step
boundary and right after each step's effect (before its journal entry), on the real guest with
real nfs-ganesha and Samba. After a kill, a re-run converges and `remove` leaves nothing; after
an interrupt, the rollback alone leaves nothing. In both cases the host tree is byte-identical.

The executor's test hook (``VMSHARE_TEST_FAULT=POINT:INDEX:SIGNAL``, see vmshare.apply) makes
the real CLI signal itself at a named point. CI runs the points right after each step's effect
(the window a write-ahead journal exists for) and a few boundaries; ``scripts/crash-harness``
runs every point (VMSHARE_CRASH_FULL=1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.testbed.fixtures import OWNER, FileServers, Guest, Vmshare, make_tree, tree_digest

from vmshare.apply import FAULT_ENV, FAULT_POINTS
from vmshare.formats import ownedblock
from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration

# steps of `vmshare add` on a running VM, per protocol (the plan the harness kills)
STEPS = {"virtiofs": 5, "nfs": 5, "smb": 7}
FULL = os.environ.get("VMSHARE_CRASH_FULL") == "1"


def kill_points() -> list[tuple[str, str, int]]:
    points = []
    for protocol, count in STEPS.items():
        for index in range(count):
            for point in FAULT_POINTS:
                if FULL or point == "effect" or (point == "intent" and index in (0, count - 1)):
                    points.append((protocol, point, index))
    return points


@dataclass
class Leftovers:
    guest: Guest
    servers: FileServers
    target: str

    @property
    def tag(self) -> str:
        return mount_tag(f"{self.guest.name}:{self.target}")

    def server_files(self) -> dict[str, str]:
        files = {
            "ganesha.conf": self.servers.ganesha.config_path,
            "ganesha exports": self.servers.ganesha.exports_path,
            "smb.conf": self.servers.samba.config_path,
            "samba include": self.servers.host_config.parent / "samba" / "vmshare.conf",
        }
        return {name: path.read_text() if path.exists() else "" for name, path in files.items()}

    def found(self, vmshare: Vmshare, before: dict[str, str]) -> list[str]:
        """Everything of the share that is still there (the goal: nothing)."""
        tag, target, guest = self.tag, self.target, self.guest
        left = []
        if tag in guest.filesystems(live=True):
            left.append("live device")
        if tag in guest.filesystems(live=False):
            left.append("config device")
        if target in guest.mounts():
            left.append("guest mount")
        if tag in guest.fstab():
            left.append("fstab line")
        if guest.run("test", "-e", target)[0] == 0:
            left.append("mount point")
        if guest.run("test", "-e", f"/etc/vmshare/{tag}.cred")[0] == 0:
            left.append("credentials file")
        now = self.server_files()
        for name, text in now.items():
            if tag in ownedblock.entries(text) or (name.endswith(".conf") and text != before[name]):
                left.append(name)
        if vmshare.shares():
            left.append("state record")
        return left


@pytest.fixture
def crash(vmshare: Vmshare, servers: FileServers) -> Vmshare:
    vmshare.env["VMSHARE_HOST_CONFIG"] = str(servers.host_config)
    return vmshare


@pytest.mark.parametrize(("protocol", "point", "index"), kill_points())
def test_sigkill_then_rerun_converges_and_remove_leaves_nothing(
    guest: Guest, crash: Vmshare, servers: FileServers, open_tmp: Path, protocol, point, index
):
    src = make_tree(open_tmp / "src", OWNER)
    digest = tree_digest(src)
    target = f"/mnt/crash-{protocol}"
    leftovers = Leftovers(guest, servers, target)
    before = leftovers.server_files()
    argv = ["add", str(src), f"{guest.name}:{target}", "--protocol", protocol]

    killed = crash(*argv, env={FAULT_ENV: f"{point}:{index}:kill"})
    assert killed.returncode == -9, killed.stderr

    rerun = crash(*argv)
    assert rerun.returncode == 0, rerun.stderr
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    status = crash.json("status")
    assert status["ok"], status
    assert crash.json(*argv, "--dry-run")["data"]["plan"]["steps"] == []

    removed = crash("remove", f"{guest.name}:{target}")
    assert removed.returncode == 0, removed.stderr
    assert leftovers.found(crash, before) == []
    assert tree_digest(src) == digest


@pytest.mark.parametrize(("protocol", "point", "index"), kill_points())
def test_sigint_rolls_back_to_exactly_before(
    guest: Guest, crash: Vmshare, servers: FileServers, open_tmp: Path, protocol, point, index
):
    src = make_tree(open_tmp / "src", OWNER)
    digest = tree_digest(src)
    target = f"/mnt/int-{protocol}"
    leftovers = Leftovers(guest, servers, target)
    before = leftovers.server_files()
    argv = ["add", str(src), f"{guest.name}:{target}", "--protocol", protocol]

    interrupted = crash(*argv, env={FAULT_ENV: f"{point}:{index}:int"})
    expected = 130 if (point, index) == ("intent", 0) else 3
    assert interrupted.returncode == expected, interrupted.stderr
    assert "interrupted" in interrupted.stderr
    assert leftovers.found(crash, before) == []
    assert tree_digest(src) == digest


def remove_points() -> list[tuple[str, str, int]]:
    points = []
    for protocol in STEPS:
        for index in range(6):  # no removal here has more steps; a later index never fires
            for point in FAULT_POINTS:
                if FULL or point == "effect":
                    points.append((protocol, point, index))
    return points


@pytest.mark.parametrize(("protocol", "point", "index"), remove_points())
def test_a_killed_remove_is_finished_by_the_next_remove(
    guest: Guest, crash: Vmshare, servers: FileServers, open_tmp: Path, protocol, point, index
):
    src = make_tree(open_tmp / "src", OWNER)
    digest = tree_digest(src)
    target = f"/mnt/rm-{protocol}"
    leftovers = Leftovers(guest, servers, target)
    before = leftovers.server_files()
    share = f"{guest.name}:{target}"
    crash("add", str(src), share, "--protocol", protocol, check=True)
    steps = len(crash.json("remove", share, "--dry-run")["data"]["plan"]["steps"])

    killed = crash("remove", share, env={FAULT_ENV: f"{point}:{index}:kill"})
    if index < steps:
        assert killed.returncode == -9, killed.stderr
        if crash.shares():  # a kill after the last step's journal entry left nothing to finish
            finished = crash("remove", share)
            assert finished.returncode == 0, finished.stderr
    else:  # the point is past the last step: the removal simply completes
        assert killed.returncode == 0, killed.stderr
    assert leftovers.found(crash, before) == []
    assert tree_digest(src) == digest
