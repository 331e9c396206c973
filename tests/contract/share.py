"""ShareContract: what a share does end to end through the real CLI, on any backend and protocol.

These tests say nothing about one hypervisor: round trips both ways, then remove leaves nothing
(checksums of the host tree), hostile host and guest paths, bad input that changes nothing,
apply idempotency and prune, two adds at the same moment, a failure in the guest that rolls
back, and `vmshare prune` after a lost state. One opt-in class per (backend test bed, protocol)
provides ``testbed`` (a ShareTestbed).
What only one backend has (QEMU-enforced read-only, shared memory, reboot persistence, device
XML) stays in tests/integration.

An opt-in leaves out a test it cannot run by setting it to ``None`` with the reason next to it
(pytest collects nothing then; a skip would fail CI).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from pprint import pformat

import pytest

from tests.testbed.faults import Fault, run_with_fault, step_index
from tests.testbed.fixtures import (
    Guest,
    Vmshare,
    drop_smb_account,
    make_tree,
    smb_account_exists,
    tree_digest,
)
from vmshare.apply import FAULT_ENV, FAULT_POINTS
from vmshare.formats.fstab import parse_table
from vmshare.protocols import mount_tag

HOSTILE_NAMES = [
    'it\'s "quoted"',
    "$(touch /tmp/pwned);`id`",
    "semi;colon & amp",
    "‘curly’ ‛quotes‚",
    "sp  ace",
    "[bold]markup[/]",
]


# the crash harness: every point of every step (scripts/crash-harness) or CI's reduced set
CRASH_FULL = os.environ.get("VMSHARE_CRASH_FULL") == "1"


def crash_points(steps: int) -> list[tuple[str, int]]:
    """Where the crash harness stops `vmshare add` of a plan of ``steps`` steps: all of them in
    full, else right after the middle step's effect (before its journal entry: the window the
    write-ahead journal is for)."""
    if CRASH_FULL:
        return [(point, index) for index in range(steps) for point in FAULT_POINTS]
    return [("effect", steps // 2)]


class CrashHarnessInFullRunOnly:
    """Put first among an opt-in's bases: its class runs the crash harness only in the full run
    (scripts/crash-harness); CI runs it on one class per backend (its CI time)."""

    if not CRASH_FULL:
        test_sigkill_mid_add_then_rerun_converges_and_remove_leaves_nothing = None
        test_sigint_mid_add_rolls_back_to_exactly_before = None


# What a network share looks like from the guest and in a rollback, whichever hypervisor runs
# the guest (QEMU user networking: the guest dials the loopback servers at 10.0.2.2).
NETWORK_EXPECTATIONS: dict[str, dict[str, object]] = {
    "nfs": {
        "mount_types": {"nfs", "nfs4"},
        "mount_source": lambda tag: f"10.0.2.2:/vmshare/{tag}",
        "rollback_marker": "↶ remove the NFS export",
    },
    "smb": {
        "mount_types": {"cifs", "smb3"},
        "mount_source": lambda tag: f"//10.0.2.2/{tag}",
        "refused_names": {"sp  ace"},  # smb.conf reads two spaces as one (check_path)
        "rollback_undone": 3,  # the Samba account too
        "rollback_marker": "↶ remove the Samba share",
    },
}


def network_expectations(protocol: str, **overrides: object) -> dict[str, object]:
    """ShareTestbed fields for a network share of ``protocol``, with a backend's overrides."""
    return {**NETWORK_EXPECTATIONS[protocol], **overrides}


@dataclass
class ShareTestbed:
    """One backend's test VM and one protocol, as the contract drives and checks them."""

    vm: str
    guest: Guest  # runs commands in the guest, reads its mounts and fstab
    cli: Vmshare  # the real CLI, set up for this backend's host (servers, config)
    protocol: str  # what the plan must choose
    mount_types: set[str]  # the guest's fstype for the mount
    tmp: Path  # where host trees go (every host user can traverse it)
    # the hypervisor's share devices, tag -> source (live or persistent); {} without any
    devices: Callable[[bool], dict[str, str]]
    # the host server's export entries, id -> entry; {} for device protocols
    exports: Callable[[], dict[str, str]]
    # the VM's own definition (e.g. domain XML live + persistent), to prove nothing changed
    vm_config: Callable[[], object]
    # the [vm.NAME] backend in spec files; None: no table (the VM's settings come from host.toml)
    backend: str | None = "libvirt"
    mount_source: Callable[[str], str] | None = None  # tag -> the guest mount's source
    add_args: list[str] = field(default_factory=list)  # e.g. --protocol nfs
    remove_args: list[str] = field(default_factory=list)  # e.g. --restart
    apply_args: list[str] = field(default_factory=list)  # e.g. --restart
    spec_protocol: str | None = None  # protocol = ... in spec files
    owner: tuple[int, int] | None = None  # owner of shared trees (network shares)
    fstab_line: Callable[[str, str], str] | None = None  # exact fstab line, where known
    status_checks: dict[str, str] = field(default_factory=lambda: {"probe": "ok"})
    # the rollback of a failed guest step: how many steps are undone and a line that shows it
    rollback_undone: int = 2
    rollback_marker: str = "↶ detach"
    refused_names: set[str] = field(default_factory=set)  # names the protocol cannot carry
    # how the CLI names a host tree made under ``tmp`` (e.g. C:\\... where the trees are on a
    # Windows host); None: its local path (and spec files may name it relative to ``tmp``)
    source_of: Callable[[Path], str] | None = None
    share_lines: list[str] = field(default_factory=list)  # more lines for each spec [[share]]
    # the faults this backend and protocol can meet mid-add (tests/testbed/faults.py)
    faults: list[Fault] = field(default_factory=list)

    def tree(self, name: str) -> Path:
        return make_tree(self.tmp / name, self.owner)

    def source(self, path: Path) -> str:
        return self.source_of(path) if self.source_of else str(path)

    def spec_share(self, source: str, target: str) -> str:
        """A spec file's [[share]] of ``source`` (a relative one is anchored at ``tmp``)."""
        return (
            f'[[share]]\nsource = {json.dumps(source)}\nvm = "{self.vm}"\ntarget = "{target}"\n'
            + (f'protocol = "{self.spec_protocol}"\n' if self.spec_protocol else "")
            + "".join(f"{line}\n" for line in self.share_lines)
        )

    def add(self, *args: str, **kw) -> object:
        return self.cli(*args, *self.add_args, **kw)

    def has(self, tag: str, live: bool = True) -> bool:
        """Whether the share's device (or export) is in place."""
        return tag in self.devices(live) or tag in self.exports()

    def snapshot(self) -> tuple[object, str, dict[str, str], dict[str, str]]:
        return (self.vm_config(), self.guest.fstab(), self.devices(False), self.exports())

    def leftovers(self, target: str, before: object) -> list[str]:
        """What is left of the share at ``target`` against a snapshot taken before it was
        added (the goal: nothing): the checks of the round trip's remove, by name."""
        tag, guest = mount_tag(f"{self.vm}:{target}"), self.guest
        now = self.snapshot()
        names = ("the VM's definition", "fstab", "device (persistent)", "export")
        left = [name for name, a, b in zip(names, before, now, strict=True) if a != b]
        for name, a, b in zip(names, before, now, strict=True):
            if a != b:  # what differs, for the failure's report
                print(
                    f"{name} differs:",
                    *difflib.unified_diff(
                        pformat(a).splitlines(), pformat(b).splitlines(), lineterm=""
                    ),
                    sep="\n",
                )
        if tag in self.devices(True):
            left.append("device (live)")
        if target in guest.mounts():
            left.append("guest mount")
        if guest.run("test", "-e", target)[0] == 0:
            left.append("mount point")
        if self.cli.shares():
            left.append("state record")
        return left


class ShareContract:
    @pytest.fixture
    def testbed(self) -> ShareTestbed:
        raise NotImplementedError("an opt-in class provides its test bed")

    def test_share_round_trips_both_ways_then_remove_leaves_nothing(self, testbed):
        tb, guest = testbed, testbed.guest
        src = tb.tree("src")
        target = "/mnt/rt"
        tag = mount_tag(f"{tb.vm}:{target}")
        fstab_before = guest.fstab()

        result = tb.cli.json("add", tb.source(src), f"{tb.vm}:{target}", *tb.add_args)
        assert result["ok"], result
        assert result["data"]["plan"]["choices"][0]["protocol"] == tb.protocol

        # host -> guest
        assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
        assert guest.read(f"{target}/sub/deeper/data.bin") == bytes(range(256)) * 64
        # guest -> host
        code, _, err = guest.sh('printf "from the guest" > "$1/guest.txt"', target)
        assert code == 0, err
        assert (src / "guest.txt").read_text() == "from the guest"
        # every layer is in place
        assert guest.mounts()[target][1] in tb.mount_types
        if tb.mount_source:
            assert guest.mounts()[target][0] == tb.mount_source(tag)
        assert tb.has(tag, live=True) and tb.has(tag, live=False)
        if tb.fstab_line:
            assert tb.fstab_line(tag, target) in guest.fstab()
        assert [e.target for e in parse_table(guest.fstab())].count(target) == 1
        status = tb.cli.json("status")
        assert status["ok"], json.dumps(status["data"], indent=1)
        assert status["data"][0]["checks"].items() >= tb.status_checks.items()

        # planning the same share again finds nothing to do, by shorthand and by spec file
        again = tb.cli.json("add", tb.source(src), f"{tb.vm}:{target}", *tb.add_args, "--dry-run")
        assert again["data"]["plan"]["steps"] == []
        spec = tb.tmp / "vmshare.toml"
        spec.write_text(tb.spec_share(tb.source(src), target))
        planned = tb.cli("plan", "-f", str(spec), check=True)
        assert "Nothing to do" in planned.stdout

        before_remove = tree_digest(src)
        removed = tb.cli("remove", f"{tb.vm}:{target}", *tb.remove_args, check=True)
        assert "fstab" in removed.stderr
        assert target not in guest.mounts()
        assert not tb.has(tag, live=True)
        assert not tb.has(tag, live=False)
        assert guest.fstab() == fstab_before
        assert guest.run("test", "-e", target)[0] != 0  # the mount point vmshare made is gone
        assert tree_digest(src) == before_remove
        assert tb.cli.shares() == []

    def test_prune_after_a_lost_state_leaves_nothing(self, testbed):
        """The state is lost (deleted behind vmshare's back): `prune` finds the share by the
        names this backend gives it (device or shared folder, export, VM record, mount, fstab
        line) and takes every layer away; a second prune finds nothing."""
        tb, guest = testbed, testbed.guest
        src = tb.tree("pruned")
        target = "/mnt/pruned"
        tag = mount_tag(f"{tb.vm}:{target}")
        fstab_before = guest.fstab()
        account_before = smb_account_exists()
        try:
            tb.add("add", tb.source(src), f"{tb.vm}:{target}", check=True)
            assert tb.has(tag, live=True) and target in guest.mounts()
            digest = tree_digest(src)
            (tb.cli.state_dir / "state.json").unlink()

            pruned = tb.cli("prune", "--yes", "--vm", tb.vm, *tb.remove_args)
            assert pruned.returncode == 0, pruned.stdout + pruned.stderr
            assert target not in guest.mounts()
            assert not tb.has(tag, live=True) and not tb.has(tag, live=False)
            assert guest.fstab() == fstab_before
            assert tree_digest(src) == digest
            again = tb.cli("prune", "--vm", tb.vm)
            assert again.returncode == 0 and "Nothing to prune." in again.stdout, again.stdout
        finally:
            if not account_before:  # prune leaves a Samba account (docs/cli.md: it cannot tell
                # vmshare made it); later tests expect the host as it was
                drop_smb_account(tb.cli.env.get("VMSHARE_HOST_CONFIG"))

    def test_sigkill_mid_add_then_rerun_converges_and_remove_leaves_nothing(self, testbed):
        """The crash harness: `vmshare add` SIGKILLed at each point of its plan (see
        crash_points); a re-run converges, `remove` leaves nothing, the host tree is untouched."""
        tb, guest = testbed, testbed.guest
        src = tb.tree("crash")
        target = "/mnt/crash"
        share = f"{tb.vm}:{target}"
        argv = ["add", tb.source(src), share, *tb.add_args]
        planned = tb.cli.json(*argv, "--dry-run")["data"]["plan"]["steps"]
        before, digest = tb.snapshot(), tree_digest(src)
        points = crash_points(len(planned))
        left: dict[str, list[str]] = {}
        for point, index in points:
            killed = tb.cli(*argv, env={FAULT_ENV: f"{point}:{index}:kill"})
            assert killed.returncode == -9, (point, index, killed.stderr)
            rerun = tb.cli(*argv)
            assert rerun.returncode == 0, (point, index, rerun.stderr)
            assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
            assert tb.cli.json(*argv, "--dry-run")["data"]["plan"]["steps"] == []
            removed = tb.cli("remove", share, *tb.remove_args)
            assert removed.returncode == 0, (point, index, removed.stderr)
            if found := tb.leftovers(target, before):
                left[f"{point}:{index}"] = found
            assert tree_digest(src) == digest
        print(f"crash harness: {len(points)} SIGKILL point(s), {len(left)} left something")
        assert left == {}

    def test_sigint_mid_add_rolls_back_to_exactly_before(self, testbed):
        """The crash harness's SIGINT: the rollback alone leaves nothing."""
        tb = testbed
        src = tb.tree("int")
        target = "/mnt/int"
        argv = ["add", tb.source(src), f"{tb.vm}:{target}", *tb.add_args]
        planned = tb.cli.json(*argv, "--dry-run")["data"]["plan"]["steps"]
        before, digest = tb.snapshot(), tree_digest(src)
        points = crash_points(len(planned))
        left: dict[str, list[str]] = {}
        for point, index in points:
            interrupted = tb.cli(*argv, env={FAULT_ENV: f"{point}:{index}:int"})
            expected = 130 if (point, index) == ("intent", 0) else 3
            assert interrupted.returncode == expected, (point, index, interrupted.stderr)
            assert "interrupted" in interrupted.stderr
            if found := tb.leftovers(target, before):
                left[f"{point}:{index}"] = found
            assert tree_digest(src) == digest
        print(f"crash harness: {len(points)} SIGINT point(s), {len(left)} left something")
        assert left == {}

    def test_faults_mid_add_end_in_bounded_time_and_leave_nothing(self, testbed):
        """Issue 14's faults: each lands while `vmshare add` is paused at its step; vmshare ends
        within the fault's bound with one error line naming the cause and rolls back. Where the
        rollback itself cannot reach the broken part (exit 4), `remove` cleans once the fault is
        over. Either way nothing is left and the host tree is untouched."""
        tb = testbed
        assert tb.faults, "every test bed names the faults its backend can meet"
        src = tb.tree("fault")
        target = "/mnt/fault"
        share = f"{tb.vm}:{target}"
        argv = ["add", tb.source(src), share, *tb.add_args]
        steps = tb.cli.json(*argv, "--dry-run")["data"]["plan"]["steps"]
        before, digest = tb.snapshot(), tree_digest(src)
        left: dict[str, list[str]] = {}
        for fault in tb.faults:
            index = step_index(steps, fault.step)
            args = [*argv, *fault.args]
            try:
                run = run_with_fault(lambda env, a=args: tb.cli.start(*a, env=env), index, fault)
            finally:
                fault.restore()
            tb.cli.transcript += [run.proc.stdout, run.proc.stderr]
            print(f"\nfault {fault.name}: exit {run.proc.returncode} in {run.seconds:.1f} s")
            print(run.proc.stderr)
            assert run.proc.returncode in (3, 4), (fault.name, run.proc.stderr)
            if fault.exit is not None:
                assert run.proc.returncode == fault.exit, (fault.name, run.proc.stderr)
            assert re.search(fault.error, run.error_line), (fault.name, run.error_line)
            assert run.seconds < fault.bound
            if run.proc.returncode == 4:  # the rollback kept what it could not undo: remove it
                assert "vmshare remove" in run.proc.stderr, run.proc.stderr
                removed = tb.cli("remove", share, *tb.remove_args)
                assert removed.returncode == 0, (fault.name, removed.stderr)
            if found := tb.leftovers(target, before):
                left[fault.name] = found
            assert tree_digest(src) == digest
        print(f"faults: {len(tb.faults)} injected, {len(left)} left something")
        assert left == {}

    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    def test_hostile_host_and_guest_paths_share_correctly(self, testbed, name):
        tb, guest = testbed, testbed.guest
        src = tb.tree(name)
        target = f"/mnt/h {name}"
        before = tb.snapshot()
        proc = tb.add("add", tb.source(src), f"{tb.vm}:{target}")
        if name in tb.refused_names:  # refused up front, with a reason, and nothing changed
            assert proc.returncode == 2, proc.stderr
            assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
            assert tb.snapshot() == before and tb.cli.shares() == []
            return
        assert proc.returncode == 0, proc.stderr
        assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
        assert guest.run("test", "-e", "/tmp/pwned")[0] != 0
        assert not Path("/tmp/pwned").exists()
        entries = [e for e in parse_table(guest.fstab()) if e.target == target]
        assert len(entries) == 1
        tb.cli("remove", f"{tb.vm}:{target}", *tb.remove_args, check=True)
        assert guest.fstab() == before[1]
        assert target not in guest.mounts()
        assert tb.snapshot() == before

    @pytest.mark.parametrize(
        ("args", "code", "message"),
        [
            (["add", "{src}", "no-such-vm:/mnt/x"], 1, "VM 'no-such-vm' not found"),
            (["add", "{src}/missing", "{vm}:/mnt/x"], 1, "does not exist"),
            (["add", "{src}", "{vm}:mnt/x"], 2, "must be absolute"),
            (["add", "{src}/a\nb", "{vm}:/mnt/x"], 2, "control character"),
            (["add", "{src}", "{vm}:/mnt/x\n/etc"], 2, "control character"),
            (["add", "{src}", "{vm}:/mnt/x", "-o", "rw 0 0\nevil /etc"], 2, "mount option"),
        ],
    )
    def test_bad_input_changes_nothing(self, testbed, args, code, message):
        tb = testbed
        src = tb.tree("bad")
        before = tb.snapshot()
        argv = [a.format(src=tb.source(src), vm=tb.vm) for a in args]
        proc = tb.add(*argv)
        assert proc.returncode == code, proc.stderr
        assert message in proc.stderr
        assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 2
        assert tb.snapshot() == before
        assert tb.cli.shares() == []

    def test_failure_in_the_guest_rolls_back(self, testbed):
        tb, guest = testbed, testbed.guest
        src = tb.tree("rb")
        assert guest.sh(": > /tmp/blocker")[0] == 0  # a file where a folder must be created
        before = tb.snapshot()
        proc = tb.add("add", tb.source(src), f"{tb.vm}:/tmp/blocker/mnt")
        assert proc.returncode == 3, proc.stderr
        assert f"undid {tb.rollback_undone} step(s)" in proc.stderr, proc.stderr
        assert "everything is as before" in proc.stderr
        assert tb.rollback_marker in proc.stderr and "(rolling back)" in proc.stderr, proc.stderr
        assert tb.snapshot() == before
        assert tb.cli.shares() == []

    def test_apply_is_idempotent_and_prune_removes_what_the_file_dropped(self, testbed):
        tb, guest = testbed, testbed.guest
        a, b = tb.tree("a"), tb.tree("b")
        spec = tb.tmp / "vmshare.toml"
        table = f'[vm.{tb.vm}]\nbackend = "{tb.backend}"\n\n' if tb.backend else ""
        # relative sources, anchored at the spec file's folder, where the trees are local
        a_source, b_source = (tb.source(t) if tb.source_of else t.name for t in (a, b))
        kept = table + tb.spec_share(a_source, "/mnt/a")
        spec.write_text(kept + "\n" + tb.spec_share(b_source, "/mnt/b"))
        tb.cli("apply", "-f", str(spec), *tb.apply_args, check=True)
        assert {"/mnt/a", "/mnt/b"} <= set(guest.mounts())
        assert tb.cli.json("plan", "-f", str(spec))["data"]["plan"]["steps"] == []
        assert "Nothing to do" in tb.cli("apply", "-f", str(spec), check=True).stdout
        spec.write_text(kept)
        tb.cli("apply", "-f", str(spec), "--prune", "--yes", *tb.apply_args, check=True)
        assert "/mnt/b" not in guest.mounts() and "/mnt/a" in guest.mounts()
        assert [s["target"] for s in tb.cli.shares()] == ["/mnt/a"]
        assert guest.read("/mnt/a/hello.txt") == (a / "hello.txt").read_bytes()
        assert (b / "hello.txt").read_text() == "hello from the host\n"

    def test_two_adds_at_the_same_moment_both_land(self, testbed):
        tb, guest = testbed, testbed.guest
        sources = [tb.tree(f"c{i}") for i in range(2)]
        results = tb.cli.at_once(
            *(
                ["add", tb.source(src), f"{tb.vm}:/mnt/c{i}", *tb.add_args]
                for i, src in enumerate(sources)
            )
        )
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        mounts = guest.mounts()
        assert "/mnt/c0" in mounts and "/mnt/c1" in mounts
        assert len(tb.cli.shares()) == 2
        for i in range(2):
            assert tb.has(mount_tag(f"{tb.vm}:/mnt/c{i}"))
            assert guest.read(f"/mnt/c{i}/hello.txt") == b"hello from the host\n"
