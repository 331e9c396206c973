"""The host layer: the machine that holds the shared folders and runs the file servers.

Today that is the machine vmshare runs on (``vmshare.host.local.LocalHost``, POSIX). A backend
whose folders and SMB shares live elsewhere (Hyper-V over WinRM: a Windows host driven through a
PowerShell runner) returns its own host from ``Backend.host``.

``HostActions`` lists exactly the host actions a plan step may name
(``vmshare.plan.step.ACTIONS["host"]``), with the keyword arguments the steps carry; ``Host``
adds the read-only question ``status`` asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class HostActions(Protocol):
    """The host layer's actions. Each is idempotent; a returned string is a note for the user."""

    def mkdir(self, path: str, owner: list[int] | None = None) -> None: ...

    def rmdir_empty(self, path: str, parents: Sequence[str] = ()) -> str | None: ...

    def nfs_export(
        self, exporter: str, settings: dict[str, Any], export: dict[str, Any]
    ) -> None: ...

    def nfs_unexport(self, exporter: str, settings: dict[str, Any], entry_id: str) -> None: ...

    def smb_account(self, settings: dict[str, Any]) -> None: ...

    def smb_account_remove(self, settings: dict[str, Any]) -> str | None: ...

    def smb_share(self, settings: dict[str, Any], share: dict[str, Any]) -> None: ...

    def smb_unshare(self, settings: dict[str, Any], entry_id: str) -> None: ...


class Host(HostActions, Protocol):
    """A host layer: its actions, and what ``status`` reads from it."""

    def export_entries(self, action: str, args: dict[str, Any]) -> dict[str, str]:
        """vmshare's entries in the server that the ``nfs_export``/``smb_share`` step used."""
        ...
