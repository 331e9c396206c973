"""Guest commands through qemu-guest-agent (guest-exec) over libvirt. Imported only by libvirt.

Every wait is bounded. One agent request waits ``REPLY_TIMEOUT`` (libvirt's own bound; when an
earlier request went unanswered libvirt first resynchronises, which adds up to 5 s). A command
must finish within its ``timeout`` (``COMMAND_TIMEOUT`` unless the caller says otherwise); one
that does not is killed in the guest, with its children (a second guest-exec, bounded by
``KILL_TIMEOUT``). When the agent does not answer at all (a suspended guest, a stuck agent), a
request it received may still run when the guest resumes: ``run`` raises GuestTimeout with
``may_still_run`` so that the caller keeps the step as maybe-done.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import libvirt
import libvirt_qemu

from vmshare.errors import GuestError, GuestTimeout, never_ran
from vmshare.guest.channel import GuestResult

REPLY_TIMEOUT = 10  # s: one request to the agent (libvirt's timeout argument, whole seconds)
COMMAND_TIMEOUT = 60.0  # s: a guest command, unless the caller gives its own bound
KILL_TIMEOUT = 10.0  # s: to kill a command that missed its deadline, and see it gone
READY_TIMEOUT = 180.0  # s: for the agent to answer after the VM (re)starts (a TCG boot)
PING_TIMEOUT = 2  # s: one guest-ping while waiting for the agent
# guest-exec-status polling: a short command ends within ~10-30 ms under TCG, and one status
# request costs ~2 ms, so start fine and back off gently to a cap that keeps long waits cheap
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.005, 1.5, 0.05  # s, factor, s

AGENT_HINT = (
    "install and start qemu-guest-agent in the guest; the domain needs a "
    "<channel type='unix'> with target name org.qemu.guest_agent.0"
)
TIMEOUT_HINT = (
    "check the guest (paused? overloaded? a hung mount?); "
    "`vmshare status` shows what is in place, and running the command again finishes or undoes it"
)
# Stop the process and every descendant (found through /proc/PID/task/*/children), then kill them:
# a stopped process cannot fork, so no child escapes. $1 is the pid guest-exec returned.
_KILL_TREE = (
    'k() { kill -STOP "$1" 2>/dev/null; '
    'for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do k "$c"; done; '
    'kill -KILL "$1" 2>/dev/null; }; k "$1"'
)


class AgentNoReply(GuestError):
    """The agent did not answer one request in time (it may have received it)."""


class AgentLostStatus(GuestError):
    """The agent no longer knows the pid: the command ended and its exit status went to an
    earlier guest-exec-status request that libvirt had stopped waiting for."""


class AgentChannel:
    name = "qemu-guest-agent"

    def __init__(self, domain: Callable[[], Any], vm: str) -> None:
        self._domain = domain  # looked up anew on each call: the domain may have restarted
        self.vm = vm

    def command(
        self, execute: str, arguments: dict[str, Any] | None = None, timeout: int = REPLY_TIMEOUT
    ) -> Any:
        message: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            message["arguments"] = arguments
        try:
            reply = libvirt_qemu.qemuAgentCommand(self._domain(), json.dumps(message), timeout, 0)
        except libvirt.libvirtError as exc:
            text = str(exc.get_error_message() or exc)
            code = exc.get_error_code()
            if code == libvirt.VIR_ERR_OPERATION_INVALID:  # refused before it reached the agent
                state, verb = self._stopped_state()
                raise never_ran(
                    GuestError(
                        f"VM {self.vm!r} is {state}: its guest agent cannot take {execute} "
                        f"({text})",
                        hint=f"{verb} it (`virsh {verb} {self.vm}`), then run the command again",
                    )
                ) from None
            unanswered = code == libvirt.VIR_ERR_AGENT_UNRESPONSIVE and "not responding" in text
            if unanswered or exc.get_error_domain() == libvirt.VIR_FROM_RPC:  # maybe delivered
                raise AgentNoReply(
                    f"guest agent of VM {self.vm!r} did not answer {execute} within {timeout} s"
                    + ("" if unanswered else f" ({text})"),
                    hint=TIMEOUT_HINT,
                ) from None
            if execute == "guest-exec-status" and "Invalid parameter 'pid'" in text:
                raise AgentLostStatus(text) from None
            raise GuestError(
                f"guest agent of VM {self.vm!r} did not answer: {text}", hint=AGENT_HINT
            ) from None
        return json.loads(reply)["return"]

    def _stopped_state(self) -> tuple[str, str]:
        """How a VM that refuses agent commands stands, and the virsh verb that brings it back:
        the error names the cause (paused and shut off need different commands)."""
        try:
            state = self._domain().state()[0]
        except libvirt.libvirtError:
            return "not running", "start"
        if state == libvirt.VIR_DOMAIN_PAUSED:
            return "paused", "resume"
        if state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTDOWN):
            return "shut off", "start"
        return "not running", "start"

    def ping(self, timeout: int = PING_TIMEOUT) -> bool:
        try:
            self.command("guest-ping", timeout=timeout)
        except GuestError:
            return False
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.5)
        raise GuestError(
            f"guest agent of VM {self.vm!r} did not answer within {timeout:g} s of the VM "
            "starting (agent start-up deadline)",
            hint=AGENT_HINT,
        )

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> GuestResult:
        arguments: dict[str, Any] = {
            "path": argv[0],
            "arg": list(argv[1:]),
            "capture-output": True,
        }
        if input is not None:
            arguments["input-data"] = base64.b64encode(input).decode()
        deadline = time.monotonic() + timeout
        try:
            pid = self.command("guest-exec", arguments)["pid"]
        except AgentNoReply as exc:
            raise GuestTimeout(
                f"{exc.message}: guest command {argv[0]} may still run when the guest resumes",
                hint=TIMEOUT_HINT,
                may_still_run=True,
            ) from None
        delay = POLL_FIRST
        while True:
            problem: str | None = None
            try:
                status = self.command("guest-exec-status", {"pid": pid})
            except AgentLostStatus:
                raise GuestTimeout(
                    f"guest command {argv[0]} (pid {pid}) in VM {self.vm!r} ended, but its result "
                    "was lost: the guest agent answered only after vmshare had stopped waiting "
                    "(the guest stalled), so the command may or may not have done its work",
                    hint=TIMEOUT_HINT,
                    may_still_run=False,
                ) from None
            except GuestError as exc:  # paused or silent meanwhile: keep asking until the deadline
                status, problem = {}, exc.message
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise self._missed_deadline(argv[0], pid, timeout, problem)
            time.sleep(delay)
            delay = min(delay * POLL_GROWTH, POLL_MAX)
        return GuestResult(
            exit_code=int(status.get("exitcode", -status.get("signal", 1))),
            stdout=base64.b64decode(status.get("out-data", "")),
            stderr=base64.b64decode(status.get("err-data", "")),
        )

    def _missed_deadline(
        self, program: str, pid: int, timeout: float, problem: str | None
    ) -> GuestTimeout:
        what = f"guest command {program} (pid {pid}) in VM {self.vm!r}"
        killed, why = self._kill(pid)
        if killed:
            return GuestTimeout(
                f"{what} did not finish within {timeout:g} s; vmshare killed it in the guest",
                hint=TIMEOUT_HINT,
                may_still_run=False,
            )
        detail = f" ({problem})" if problem else ""
        return GuestTimeout(
            f"{what} did not finish within {timeout:g} s{detail} and could not be killed "
            f"within {KILL_TIMEOUT:g} s ({why}): it may still run when the guest resumes",
            hint=TIMEOUT_HINT,
            may_still_run=True,
        )

    def _kill(self, pid: int) -> tuple[bool, str]:
        """Kill ``pid`` and its descendants in the guest: (gone, why not), within KILL_TIMEOUT."""
        deadline = time.monotonic() + KILL_TIMEOUT
        reply = max(1, min(REPLY_TIMEOUT, int(KILL_TIMEOUT)))
        try:
            killer = self.command(
                "guest-exec", {"path": "sh", "arg": ["-c", _KILL_TREE, "vmshare", str(pid)]}, reply
            )["pid"]
        except GuestError as exc:
            return False, exc.message
        gone = False
        for target in (pid, killer):  # collect both exit statuses, so the agent forgets them
            while time.monotonic() < deadline:
                try:
                    exited = self.command("guest-exec-status", {"pid": target}, reply)["exited"]
                except AgentLostStatus:
                    exited = True  # it ended; an earlier, abandoned request took its status
                except GuestError as exc:
                    return gone, exc.message
                if exited:
                    gone = True
                    break
                time.sleep(0.1)
            if not gone:
                break
        return gone, "" if gone else "it did not exit after SIGKILL (stuck in the kernel?)"
