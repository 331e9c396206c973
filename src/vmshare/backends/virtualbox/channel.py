"""The guest channel through VirtualBox guest control (Guest Additions): ``VBoxManage
guestcontrol VM run --passwordfile`` or the SDK's guest session, as the adapter does it. The
guest password comes from a secret reference, resolved on first use, never put in argv."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vmshare.backends.virtualbox.adapter import Adapter
from vmshare.errors import GuestError
from vmshare.guest.channel import GuestResult
from vmshare.secret_value import Secret


class GuestControlChannel:
    name = "vbox-guestcontrol"

    def __init__(
        self, adapter: Adapter, machine: str, user: str, password: Callable[[], Secret]
    ) -> None:
        self.adapter, self.machine, self.user, self.password = adapter, machine, user, password

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        if not argv:
            raise GuestError("empty guest command", hint="a bug: report it")
        return self.adapter.guest_run(
            self.machine, self.user, self.password(), list(argv), input, timeout
        )
