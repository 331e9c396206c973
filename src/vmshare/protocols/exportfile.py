"""A server config file in which vmshare owns a marked block of entries, one per share.

Every change is a locked read-modify-write, written atomically with the previous version kept;
if the server then refuses to reload, the previous file is put back and reloaded. A server that
does not run (ServerNotRunning) fails an added entry the same way, but not a removed one: the
config no longer has it, a server that does not run serves nothing, and its next start reads
the edited file.
"""

from __future__ import annotations

import contextlib
import errno
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from vmshare.errors import HostCommandError, ServerNotRunning
from vmshare.formats import ownedblock
from vmshare.fsutil import backup_path, locked_folder, read_text, real_file
from vmshare.host import rootfiles
from vmshare.host.liveness import Liveness

ROOT_HINT = (
    "run vmshare as root, or let it use sudo: install the lines of `vmshare doctor --sudoers`"
)


class OwnedConfigFile(ABC):
    @property
    @abstractmethod
    def path(self) -> Path: ...

    @abstractmethod
    def reload(self) -> None:
        """Make the server read the file again; ServerNotRunning if it does not run."""

    def liveness(self) -> Liveness:
        """Whether the server that reads this file runs (doctor asks; None: cannot tell)."""
        return Liveness(None, "not checked")

    def not_running(self, evidence: Liveness) -> ServerNotRunning:
        """The error for a server that does not run: which, why vmshare thinks so, how to
        start it."""
        return ServerNotRunning(
            f"the file server is not running ({evidence.detail})",
            hint="start it, then run vmshare again",
        )

    def entries(self) -> dict[str, str]:
        return ownedblock.entries(read_text(self.path))

    def edit(
        self, change: Callable[[str], str], *, reload: bool = True, removing: bool = False
    ) -> bool:
        """Apply ``change`` to the file's text; reload the server. False if nothing changed.

        ``removing``: the change only takes entries out, so it stands when the server does not
        run (the reload raises ServerNotRunning); a running server that refuses still undoes it.
        """
        try:
            with locked_folder(self.path):
                existed = real_file(self.path).exists()
                backup = backup_path(self.path)
                old_backup = backup.read_bytes() if backup.exists() else None
                old = read_text(self.path)
                new = change(old)
                if new == old:
                    return False
                self._write(new)
                if reload:
                    try:
                        self.reload()
                    except Exception as exc:
                        if removing and isinstance(exc, ServerNotRunning):
                            return True
                        # never leave a config the server refused, nor a trace of it; a
                        # server that does not run reads the restored file when it starts
                        self._restore(old if existed else None, old_backup)
                        with contextlib.suppress(ServerNotRunning):
                            self.reload()
                        raise
        except PermissionError as exc:
            raise HostCommandError(f"permission denied: {exc.filename}", hint=ROOT_HINT) from None
        except FileNotFoundError as exc:
            raise HostCommandError(
                f"{self.path.parent} does not exist",
                hint="is the file server installed? check its settings in host.toml",
            ) from exc
        return True

    def _restore(self, old: str | None, old_backup: bytes | None) -> None:
        """Put the file and its backup back as they were before a refused edit; a file (or
        backup) that did not exist goes again."""
        if old is not None:
            self._write(old, keep_backup=False)
        else:
            rootfiles.remove(real_file(self.path))
        backup = backup_path(self.path)
        if old_backup is None:
            rootfiles.remove(backup)
        else:
            rootfiles.write(backup, old_backup)

    def _write(self, text: str, *, keep_backup: bool = True) -> None:
        try:
            rootfiles.write(
                self.path, text.encode("utf-8"), keep_backup=keep_backup and self.path.exists()
            )
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise PermissionError(exc.errno, exc.strerror, str(self.path)) from None
            raise


class MainConfig(OwnedConfigFile):
    """A server's main config, in which vmshare owns only the line that includes its own file;
    reloading it reloads that server."""

    def __init__(self, path: Path, server: OwnedConfigFile) -> None:
        self._path, self.server = path, server

    @property
    def path(self) -> Path:
        return self._path

    def reload(self) -> None:
        self.server.reload()
