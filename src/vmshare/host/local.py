"""The local host: the POSIX machine vmshare runs on, and every backend's host unless it says
otherwise (``Backend.host``). Its actions: the user's folders (created and removed only while
empty) and the file servers' exports. Arguments are plain data from a plan or the journal."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmshare.secrets import SecretStore

if TYPE_CHECKING:
    from vmshare.protocols.nfs import NfsExporter
    from vmshare.protocols.smb import SambaExporter


class LocalHost:
    """The host actions (``vmshare.host.HostActions``) on this machine."""

    def __init__(self, secrets: SecretStore | None = None) -> None:
        self.secrets = secrets

    def mkdir(self, path: str, owner: list[int] | None = None) -> None:
        """Create the folder; with ``owner`` (uid, gid) the last component is chowned to it."""
        folder = Path(path)
        existed = folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if owner is not None and not existed:
            os.chown(folder, owner[0], owner[1])

    def rmdir_empty(self, path: str, parents: Sequence[str] = ()) -> str | None:
        """Remove a folder vmshare created, then the parents its mkdir -p made, each only while
        it is still empty: never the user's files."""
        for folder in (path, *parents):
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                continue
            except OSError:
                return f"left {folder} on the host: it is not empty"
        return None

    # File servers: each step's arguments name the exporter and carry its settings, so a
    # journalled undo works even after host.toml changed.

    def nfs_export(self, exporter: str, settings: dict[str, Any], export: dict[str, Any]) -> None:
        from vmshare.protocols.nfs import NfsExport

        _nfs(exporter, settings).export(NfsExport(**export))

    def nfs_unexport(self, exporter: str, settings: dict[str, Any], entry_id: str) -> None:
        _nfs(exporter, settings).unexport(entry_id)

    def smb_account(self, settings: dict[str, Any]) -> None:
        """The dedicated Samba account; what of it vmshare creates is recorded in the state dir,
        so that the undo takes away only that."""
        from vmshare.protocols.smb import secret_name

        samba = _samba(settings)
        assert self.secrets is not None
        created = samba.ensure_account(
            self.secrets.get_or_create(secret_name(samba.settings.account))
        )
        if any(created.values()):
            record = self._account_record(samba.settings.account)
            known = json.loads(record.read_text()) if record.exists() else {}
            record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            record.write_text(json.dumps({k: v or known.get(k, False) for k, v in created.items()}))

    def smb_account_remove(self, settings: dict[str, Any]) -> str | None:
        """Undo of ``smb_account``: once no vmshare share uses the account, remove what vmshare
        created of it (Unix user, Samba entry) and its password; never an account it found."""
        from vmshare.protocols.smb import secret_name

        samba = _samba(settings)
        account = samba.settings.account
        if samba.account_in_use():
            return None
        record = self._account_record(account)
        if not record.exists():
            return f"kept the Samba account {account}: vmshare did not create it"
        created = json.loads(record.read_text())
        samba.remove_account(
            unix_user=bool(created.get("unix_user")), samba_entry=bool(created.get("samba_entry"))
        )
        assert self.secrets is not None
        self.secrets.delete(secret_name(account))
        record.unlink()
        return None

    def _account_record(self, account: str) -> Path:
        assert self.secrets is not None
        return self.secrets.directory.parent / "accounts" / f"smb-{account}.json"

    def smb_share(self, settings: dict[str, Any], share: dict[str, Any]) -> None:
        from vmshare.protocols.smb import SmbShare

        _samba(settings).share(SmbShare(**share))

    def smb_unshare(self, settings: dict[str, Any], entry_id: str) -> None:
        _samba(settings).unshare(entry_id)

    def export_entries(self, action: str, args: dict[str, Any]) -> dict[str, str]:
        """vmshare's entries in the server that the ``nfs_export``/``smb_share`` step used."""
        if action == "nfs_export":
            return _nfs(args["exporter"], args["settings"]).entries()
        return _samba(args["settings"]).entries()


def _nfs(exporter: str, settings: dict[str, Any]) -> NfsExporter:
    from vmshare.protocols.nfs import EXPORTERS
    from vmshare.spec import NfsHost

    return EXPORTERS[exporter](NfsHost(**settings))


def _samba(settings: dict[str, Any]) -> SambaExporter:
    from vmshare.protocols.smb import SambaExporter
    from vmshare.spec import SmbHost

    return SambaExporter(SmbHost(**settings))
