"""The guest layer: per-OS guest code over one channel call, ``GuestChannel.run(argv)``.

``guest_for`` picks the code for the guest's OS: ``LinuxGuest`` (guest/linux.py) or the
``WindowsGuest`` skeleton (guest/windows.py). ``Guest`` is what both offer: ``inspect``, and
exactly the guest actions a plan step may name (``vmshare.plan.step.ACTIONS["guest"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from vmshare.facts import GuestFacts
    from vmshare.guest.channel import GuestChannel
    from vmshare.secrets import SecretStore

GuestOs = Literal["linux", "windows"]


class GuestActions(Protocol):
    """The guest layer's actions. Each is idempotent; a returned string is a note for the user."""

    def mkdir(self, path: str) -> None: ...

    def rmdir_empty(self, path: str, parents: Sequence[str] = ()) -> str | None: ...

    def mount(
        self,
        source: str,
        target: str,
        fstype: str,
        options: list[str],
        fallbacks: list[tuple[str, list[str]]] | None = None,
    ) -> None: ...

    def unmount(self, target: str) -> None: ...

    def probe(self, target: str, writable: bool) -> None: ...

    def fstab_add(
        self,
        entry_id: str,
        source: str,
        target: str,
        fstype: str,
        options: list[str],
        follow_mount: bool = False,
    ) -> None: ...

    def fstab_remove(self, entry_id: str) -> None: ...

    def write_credentials(self, path: str, account: str, secret_name: str) -> None: ...

    def remove_file(self, path: str) -> None: ...


class Guest(GuestActions, Protocol):
    """A guest layer: its actions, the read-only probe facts and status use, and its channel."""

    channel: GuestChannel

    def inspect(self, targets: Sequence[str]) -> GuestFacts: ...


def guest_for(
    os: GuestOs, channel: GuestChannel, vm: str, secrets: SecretStore | None = None
) -> Guest:
    """The guest code for ``os``, over ``channel``."""
    if os == "windows":
        from vmshare.guest.windows import WindowsGuest

        return WindowsGuest(channel, vm, secrets)
    from vmshare.guest.linux import LinuxGuest

    return LinuxGuest(channel, vm, secrets)
