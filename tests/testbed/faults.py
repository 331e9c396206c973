"""Faults injected in the middle of `vmshare add` (issue 14): the real CLI pauses itself at a
named point of a step (``VMSHARE_TEST_FAULT=POINT:INDEX:stop``, see vmshare.apply), the fault
lands (a server stopped or frozen, the guest frozen or off, the hypervisor failing a call), and
the CLI goes on. Each fault must end in bounded time with one clear error line, a rollback, and
nothing half-configured once the fault is over.

"Accepts and never answers" is made by a peer that holds every byte with its socket open (the
proxies in tests/testbed/stalls.py, the WS-Man endpoint's hold()): the kernel completes the TCP
handshake and no byte ever comes back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import libvirt

from vmshare.apply import FAULT_ENV

PAUSE_WAIT = 600.0  # s: how long the CLI may take to reach its pause (a TCG guest under load)


@dataclass(frozen=True)
class Fault:
    """One fault: where it lands in the plan, how it is made and undone, what vmshare says."""

    name: str
    step: str  # the plan's first step whose "layer.action" contains this is where it lands
    inject: Callable[[], None]
    restore: Callable[[], None]  # the fault is over (the service is back, the guest runs)
    error: str  # a regex the one error line must match: the cause, in the user's words
    point: str = "intent"  # "intent": before the step's effect; "completed": right after it
    bound: float = 150.0  # s from the resume to vmshare's exit: every deadline involved, plus room
    args: tuple[str, ...] = ()  # more arguments for this fault's add (e.g. -c a proxy's URI)
    exit: int | None = None  # the one exit code it must end with (3: the rollback finished)


@dataclass(frozen=True)
class FaultRun:
    proc: subprocess.CompletedProcess[str]
    seconds: float  # from the resume to the exit

    @property
    def error_line(self) -> str:
        lines = [line for line in self.proc.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, self.proc.stderr
        return lines[0]


def step_index(steps: Sequence[dict[str, object]], wanted: str) -> int:
    """The index of the plan's first step whose "layer.action" contains ``wanted``."""
    names = [f"{step['layer']}.{step['action']}" for step in steps]
    for index, name in enumerate(names):
        if wanted in name:
            return index
    raise AssertionError(f"no step {wanted!r} in the plan: {names}")


def _stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def run_with_fault(
    start: Callable[[dict[str, str]], subprocess.Popen[str]], index: int, fault: Fault
) -> FaultRun:
    """Start the CLI (``start(env)``), let it pause at ``fault.point`` of step ``index``, inject
    the fault, resume it and wait for its exit (at most ``fault.bound`` seconds)."""
    proc = start({FAULT_ENV: f"{fault.point}:{index}:stop"})
    try:
        deadline = time.monotonic() + PAUSE_WAIT
        while not _stopped(proc.pid):
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"vmshare ended before the fault: {proc.returncode}\n{err}")
            assert time.monotonic() < deadline, "vmshare never reached the fault's step"
            time.sleep(0.05)
        fault.inject()
        os.kill(proc.pid, signal.SIGCONT)
        resumed = time.monotonic()
        try:
            out, err = proc.communicate(timeout=fault.bound)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{fault.name}: still running after {fault.bound} s") from None
        seconds = time.monotonic() - resumed
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()
    return FaultRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seconds)


def guest_frozen(
    dom: libvirt.virDomain, step: str, error: str, point: str = "completed", bound: float = 90.0
) -> Fault:
    """The test guest frozen (its domain paused) at ``point`` of ``step``, resumed after: what
    every backend's stand-in forwards guest work to stops answering."""

    def resume() -> None:
        if dom.info()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()

    return Fault("guest frozen", step, dom.suspend, resume, error, point=point, bound=bound)
