"""Guest commands through qemu-guest-agent (guest-exec) over libvirt. Imported only by libvirt."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import libvirt
import libvirt_qemu

from vmshare.errors import GuestError
from vmshare.guest.channel import GuestResult

AGENT_HINT = (
    "install and start qemu-guest-agent in the guest; the domain needs a "
    "<channel type='unix'> with target name org.qemu.guest_agent.0"
)


class AgentChannel:
    name = "qemu-guest-agent"

    def __init__(self, domain: Callable[[], Any], vm: str) -> None:
        self._domain = domain  # looked up anew on each call: the domain may have restarted
        self.vm = vm

    def command(
        self, execute: str, arguments: dict[str, Any] | None = None, timeout: int = 10
    ) -> Any:
        message: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            message["arguments"] = arguments
        try:
            reply = libvirt_qemu.qemuAgentCommand(self._domain(), json.dumps(message), timeout, 0)
        except libvirt.libvirtError as exc:
            raise GuestError(
                f"guest agent of VM {self.vm!r} did not answer: {exc.get_error_message()}",
                hint=AGENT_HINT,
            ) from None
        return json.loads(reply)["return"]

    def ping(self, timeout: int = 5) -> bool:
        try:
            self.command("guest-ping", timeout=timeout)
        except GuestError:
            return False
        return True

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping(timeout=2):
                return
            time.sleep(0.5)
        raise GuestError(
            f"guest agent of VM {self.vm!r} not ready after {timeout:g} s", hint=AGENT_HINT
        )

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        arguments: dict[str, Any] = {
            "path": argv[0],
            "arg": list(argv[1:]),
            "capture-output": True,
        }
        if input is not None:
            arguments["input-data"] = base64.b64encode(input).decode()
        pid = self.command("guest-exec", arguments)["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                raise GuestError(
                    f"guest command {argv[0]} did not finish within {timeout:g} s",
                    hint="check the guest; it may be overloaded or the mount may hang",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        return GuestResult(
            exit_code=int(status.get("exitcode", -status.get("signal", 1))),
            stdout=base64.b64decode(status.get("out-data", "")),
            stderr=base64.b64decode(status.get("err-data", "")),
        )
