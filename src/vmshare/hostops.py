"""Host-side actions: the user's folders (created and removed only while empty) and the
file servers' exports. Arguments are plain data from a plan or the journal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vmshare.secrets import SecretStore


class HostOps:
    def __init__(self, secrets: SecretStore | None = None) -> None:
        self.secrets = secrets

    def mkdir(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def rmdir_empty(self, path: str) -> str | None:
        """Remove a folder vmshare created, only if it is still empty: never the user's files."""
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return None
        except OSError:
            return f"left {path} on the host: it is not empty"
        return None

    # NFS ----------------------------------------------------------------------------

    def nfs_export(self, exporter: str, settings: dict[str, Any], export: dict[str, Any]) -> None:
        from vmshare.protocols.nfs import EXPORTERS, NfsExport
        from vmshare.spec import NfsHost

        EXPORTERS[exporter](NfsHost(**settings)).export(NfsExport(**export))

    def nfs_unexport(self, exporter: str, settings: dict[str, Any], entry_id: str) -> None:
        from vmshare.protocols.nfs import EXPORTERS
        from vmshare.spec import NfsHost

        EXPORTERS[exporter](NfsHost(**settings)).unexport(entry_id)

    # SMB ----------------------------------------------------------------------------

    def smb_account(self, settings: dict[str, Any]) -> str | None:
        from vmshare.protocols.smb import SambaExporter, secret_name
        from vmshare.spec import SmbHost

        smb = SmbHost(**settings)
        assert self.secrets is not None
        SambaExporter(smb).ensure_account(self.secrets.get_or_create(secret_name(smb.account)))
        return None

    def smb_share(self, settings: dict[str, Any], share: dict[str, Any]) -> None:
        from vmshare.protocols.smb import SambaExporter, SmbShare
        from vmshare.spec import SmbHost

        SambaExporter(SmbHost(**settings)).share(SmbShare(**share))

    def smb_unshare(self, settings: dict[str, Any], entry_id: str) -> None:
        from vmshare.protocols.smb import SambaExporter
        from vmshare.spec import SmbHost

        SambaExporter(SmbHost(**settings)).unshare(entry_id)
