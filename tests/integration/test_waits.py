"""Every wait has a deadline, and the error names it (issue 6, "never worse than before").

A libvirt socket that accepts and never answers, a libvirtd that answers and then goes silent,
a suspended guest, a guest agent that stops reading, a guest command that never ends: vmshare
gives up within a bound, says which wait it gave up on, and holds the state lock no longer.
Durations are bounded generously: it is the unboundedness these tests catch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from tests.testbed.domain import wait_for_agent
from tests.testbed.fixtures import Guest, Vmshare
from tests.testbed.stalls import FreezableProxy, HungSocket, stop_guest_agent

from vmshare.backends.libvirt.agent import REPLY_TIMEOUT, AgentChannel
from vmshare.backends.libvirt.backend import (
    KEEPALIVE_COUNT,
    KEEPALIVE_INTERVAL,
    OPEN_TIMEOUT,
    LibvirtBackend,
)
from vmshare.backends.libvirt.settings import LibvirtVm
from vmshare.errors import BackendUnavailable, GuestTimeout
from vmshare.state import ShareRecord, State, StateStore

pytestmark = pytest.mark.integration

BOUND = 60.0  # s: far above every deadline involved (15 s open, 20 s keepalive, 10+5 s agent)


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def timed(vmshare: Vmshare, *args: str) -> tuple[float, object]:
    started = time.monotonic()
    proc = vmshare(*args)
    return time.monotonic() - started, proc


@pytest.fixture
def hung() -> Iterator[HungSocket]:
    with HungSocket() as server:
        yield server


def test_add_gives_up_on_a_libvirt_socket_that_never_answers(hung: HungSocket, tmp_path: Path):
    vmshare = Vmshare(tmp_path / "state")  # no guest needed: nothing gets past the connection
    src = tmp_path / "src"
    src.mkdir()
    seconds, proc = timed(vmshare, "add", str(src), "somevm:/mnt/hung", "-c", hung.uri)
    assert hung.accepted >= 1  # it really talked to the silent server
    assert proc.returncode == 1, proc.stderr
    assert seconds < BOUND, seconds
    line = error_line(proc.stderr)
    assert f"within {OPEN_TIMEOUT:g} s (connection deadline)" in line, line
    assert hung.uri in line
    assert "virsh -c" in proc.stderr  # the hint says how to check the connection by hand
    print(f"\nadd against a silent libvirt socket failed after {seconds:.1f} s: {line}")
    # the state lock is free at once: a command that needs it runs now
    seconds, proc = timed(vmshare, "remove", "somevm:/mnt/hung")
    assert proc.returncode == 1 and "has no share" in proc.stderr, proc.stderr
    assert seconds < 10, seconds


def test_a_hung_add_holds_the_state_lock_no_longer_than_its_deadline(
    hung: HungSocket, tmp_path: Path
):
    """A second vmshare change waits for the lock, and gets it when the first one gives up."""
    vmshare = Vmshare(tmp_path / "state")
    src = tmp_path / "src"
    src.mkdir()
    results: dict[str, tuple[float, object]] = {}
    started = time.monotonic()
    add = threading.Thread(
        target=lambda: results.update(
            add=timed(vmshare, "add", str(src), "somevm:/mnt/hung", "-c", hung.uri)
        )
    )
    add.start()
    while hung.accepted == 0 and time.monotonic() - started < BOUND:  # add holds the lock now
        time.sleep(0.05)
    waited, proc = timed(vmshare, "remove", "somevm:/mnt/hung")
    add.join(BOUND)
    assert not add.is_alive()
    assert "has no share" in proc.stderr, proc.stderr  # it got the lock (no LockTimeout)
    assert waited < BOUND, waited
    assert results["add"][0] < BOUND
    print(f"\nthe second command waited {waited:.1f} s for the lock")


def test_status_and_doctor_answer_in_bounded_time_with_a_silent_libvirt(
    hung: HungSocket, tmp_path: Path
):
    vmshare = Vmshare(tmp_path / "state")
    seconds, proc = timed(vmshare, "doctor", "-c", hung.uri, "--json")
    assert proc.returncode == 1
    assert seconds < BOUND, seconds
    checks = {c["name"]: c for c in json.loads(proc.stdout)["data"]}
    assert checks["backend libvirt"]["status"] == "fail"
    assert "(connection deadline)" in checks["backend libvirt"]["detail"]
    print(f"\ndoctor with a silent libvirt socket answered in {seconds:.1f} s")

    # a share recorded on that connection: status reports it unreachable, in bounded time
    record = ShareRecord(
        key="somevm:/mnt/s",
        vm="somevm",
        vm_spec=LibvirtVm(name="somevm", connection=hung.uri),
        source=str(tmp_path),
        target="/mnt/s",
        protocol="virtiofs",
        tag="vmshare-0000000000000000",
        readonly=False,
        requested={},
        origin="cli",
        created="2026-01-01T00:00:00+00:00",
    )
    StateStore(vmshare.state_dir).save(State(shares={record.key: record}))
    seconds, proc = timed(vmshare, "status", "--json")
    assert proc.returncode == 1, proc.stderr
    assert seconds < BOUND, seconds
    [health] = json.loads(proc.stdout)["data"]
    assert any("(connection deadline)" in p for p in health["problems"]), health
    print(f"status with a silent libvirt socket answered in {seconds:.1f} s")


def test_a_libvirtd_that_goes_silent_after_the_open_is_dropped_by_keepalive(guest: Guest):
    """Calls after the open are bounded too: libvirt's keepalive closes the connection."""
    with FreezableProxy() as proxy:
        backend = LibvirtBackend(LibvirtVm(name="vmshare-probe", connection=proxy.uri))
        try:
            assert backend.inspect(guest.name).running  # through the proxy, to the real libvirtd
            proxy.freeze()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as caught:
                backend.inspect(guest.name)
            seconds = time.monotonic() - started
        finally:
            backend.close()
    assert seconds < BOUND, seconds
    assert seconds > KEEPALIVE_INTERVAL  # it was keepalive, not an immediate refusal
    message = caught.value.message
    assert "lost the connection to libvirt" in message and "keepalive" in message, message
    assert f"{KEEPALIVE_COUNT} probes {KEEPALIVE_INTERVAL} s apart" in message
    print(f"\nkeepalive dropped the silent connection after {seconds:.1f} s: {message}")


def agent(guest: Guest) -> AgentChannel:
    conn = libvirt.open("qemu:///system")
    return AgentChannel(lambda: conn.lookupByName(guest.name), guest.name)


def test_a_guest_command_past_its_deadline_is_killed_in_the_guest(guest: Guest):
    marker = "/tmp/vmshare-late-marker"
    script = 'sleep 300 & sleep 301; touch "$1"'
    started = time.monotonic()
    with pytest.raises(GuestTimeout) as caught:
        agent(guest).run(["sh", "-c", script, "sh", marker], timeout=2)
    seconds = time.monotonic() - started
    assert seconds < BOUND, seconds
    assert not caught.value.may_still_run
    assert "did not finish within 2 s; vmshare killed it in the guest" in caught.value.message
    time.sleep(1)
    _, out, _ = guest.sh("ps -o pid,args | grep -c '[s]leep 30[01]' || true")
    assert out.strip() == b"0", out  # the command and the child it started are gone
    assert guest.run("test", "-e", marker)[0] != 0


def test_a_command_the_agent_never_answered_is_reported_as_maybe_still_running(guest: Guest):
    """The agent takes the request and sits on it: vmshare cannot stop it, and says so.

    The command does run once the agent resumes: this is the "maybe done" case that the
    caller (the journal) must keep, which is why the error is a GuestTimeout with may_still_run.
    """
    marker = "/tmp/vmshare-queued-marker"
    guest.run("rm", "-rf", marker)
    stop_guest_agent(guest.dom, 25)
    try:
        time.sleep(1)
        started = time.monotonic()
        with pytest.raises(GuestTimeout) as caught:
            agent(guest).run(["mkdir", marker])
        seconds = time.monotonic() - started
    finally:
        wait_for_agent(guest.dom, 90)
    assert seconds < REPLY_TIMEOUT + 5 + BOUND / 2, seconds
    assert caught.value.may_still_run
    message = caught.value.message
    assert f"did not answer guest-exec within {REPLY_TIMEOUT} s" in message, message
    assert "may still run when the guest resumes" in message
    print(f"\nunanswered guest-exec gave up after {seconds:.1f} s: {message}")
    # and it did run, late: only a journal that keeps the step as maybe-done can undo it
    time.sleep(2)
    assert guest.run("test", "-d", marker)[0] == 0
    guest.run("rmdir", marker)


def test_add_while_the_guest_agent_is_stuck_fails_in_bounded_time(
    guest: Guest, vmshare: Vmshare, tmp_path: Path
):
    src = tmp_path / "src"
    src.mkdir()
    stop_guest_agent(guest.dom, 30)
    try:
        time.sleep(1)
        seconds, proc = timed(vmshare, "add", str(src), f"{guest.name}:/mnt/stuck")
    finally:
        wait_for_agent(guest.dom, 90)
    assert proc.returncode == 1, proc.stderr
    assert seconds < BOUND, seconds
    line = error_line(proc.stderr)
    assert f"did not answer guest-exec within {REPLY_TIMEOUT} s" in line, line
    print(f"\nadd with a stuck guest agent failed after {seconds:.1f} s: {line}")
    assert vmshare.shares() == []


def test_add_to_a_suspended_guest_fails_at_once_and_leaves_nothing(
    guest: Guest, vmshare: Vmshare, tmp_path: Path
):
    src = tmp_path / "src"
    src.mkdir()
    target = "/mnt/suspended"
    fstab_before = guest.fstab()
    devices_before = (guest.filesystems(live=True), guest.filesystems(live=False))
    guest.dom.suspend()
    try:
        seconds, proc = timed(vmshare, "add", str(src), f"{guest.name}:{target}")
    finally:
        guest.dom.resume()
    assert proc.returncode == 1, proc.stderr
    assert seconds < BOUND, seconds
    line = error_line(proc.stderr)
    assert "is paused" in line and "virsh resume" in proc.stderr, line
    print(f"\nadd to a suspended guest failed after {seconds:.1f} s: {line}")
    wait_for_agent(guest.dom, 60)
    time.sleep(3)  # anything queued in the guest would run now
    assert guest.run("test", "-e", target)[0] != 0
    assert guest.fstab() == fstab_before
    assert target not in guest.mounts()
    assert (guest.filesystems(live=True), guest.filesystems(live=False)) == devices_before
    assert vmshare.shares() == []
