"""The Windows host of Hyper-V VMs: the host layer (``vmshare.host.Host``) over a PowerShell
runner. Folders (made only when the plan says --create), one local account the VMs log in as,
an encrypted SMB share per folder for that account only, and its NTFS rights.

The account's password is generated and kept in vmshare's secret store; it reaches the host on
the script's standard input only (``InputRunner``), never in a script text, an argv or a log.
"""

from __future__ import annotations

import json
import ntpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmshare.backends.hyperv import scripts
from vmshare.backends.hyperv.runner import InputRunner
from vmshare.errors import HostCommandError, UsageError
from vmshare.facts import PathFact
from vmshare.formats.powershell import PowerShellRunner, PsResult, checked, json_result
from vmshare.protocols import TAG_PREFIX
from vmshare.protocols.smb import secret_name
from vmshare.protocols.smb_windows import WindowsSmbExporter
from vmshare.secrets import SecretRef, SecretStore, resolve_secret

NO_NFS = "a Hyper-V host shares folders with its VMs over SMB only"


def windows_ancestors(path: str) -> list[str]:
    """The folders above ``C:\\a\\b``, nearest first, without the drive's root."""
    found: list[str] = []
    current = ntpath.dirname(path.rstrip("\\"))
    while current and not current.endswith(":\\") and current != path:
        found.append(current)
        parent = ntpath.dirname(current)
        if parent == current:
            break
        current = parent
    return found


class WindowsHost:
    """The host actions on the Windows host behind ``runner``."""

    def __init__(self, runner: PowerShellRunner, secrets: SecretStore | None = None) -> None:
        self.runner = runner
        self.secrets = secrets
        self.exporter = WindowsSmbExporter(runner)

    def _run(self, text: str, what: str) -> Any:
        return json_result(self.runner.run(text), what)

    # ------------------------------------------------------------------- facts

    def probe_path(self, path: str) -> PathFact:
        parents = windows_ancestors(path)
        answer = self._run(scripts.path_script(path, parents), f"look at {path}")
        existing = {p.lower() for p in answer.get("parents") or []}
        if not answer.get("exists"):
            missing: list[str] = []
            for parent in parents:
                if parent.lower() in existing:
                    break
                missing.append(parent)
            return PathFact(exists=False, is_dir=False, missing_parents=missing)
        return PathFact(exists=True, is_dir=bool(answer.get("folder")), mode=0o777)

    # ----------------------------------------------------------------- folders

    def mkdir(self, path: str, owner: list[int] | None = None) -> None:
        checked(self.runner.run(scripts.mkdir_script(path)), f"create {path}")

    def rmdir_empty(self, path: str, parents: Sequence[str] = ()) -> str | None:
        """Remove a folder vmshare created, then the parents it made, each only while empty."""
        for folder in (path, *parents):
            answer = self._run(scripts.rmdir_script(folder), f"remove {folder}")
            if answer == "kept":
                return f"left {folder} on the host: it is not empty"
        return None

    # ------------------------------------------------------------------ account

    def smb_account(self, settings: dict[str, Any]) -> None:
        """The dedicated local account, with the password vmshare keeps. An account the user
        named is theirs: vmshare neither makes nor changes it, and keeps the password its
        reference gives for the guests' credentials files."""
        account = settings["account"]
        assert self.secrets is not None
        if not settings.get("dedicated", True):
            ref = SecretRef.model_validate(settings["password"])
            secret = resolve_secret(ref, f"the password of the host account {account}")
            self.secrets.put(secret_name(account), secret)
            return
        if not isinstance(self.runner, InputRunner):
            raise HostCommandError(
                "this PowerShell transport cannot hand a password to a script on its input",
                hint="update vmshare, or name an existing account with [vm.NAME] smb_account",
            )
        password = self.secrets.get_or_create(secret_name(account)).reveal()
        result = self.runner.run_with_input(scripts.account_script(account), password + "\n")
        created = json_result(result, f"make the local account {account}")
        if created:
            record = self._account_record(account)
            record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            record.write_text(json.dumps({"created": True}))

    def smb_account_remove(self, settings: dict[str, Any]) -> str | None:
        """Once no share grants the account anything, remove it if vmshare made it (and forget
        the copy vmshare kept of a named account's password)."""
        account = settings["account"]
        assert self.secrets is not None
        answer = self._run(scripts.account_query_script(account), f"look up account {account}")
        grants = [str(g).lower() for g in answer.get("grants") or []]
        me = account.lower()
        if any(g == me or g.endswith("\\" + me) for g in grants):
            return None
        if not settings.get("dedicated", True):
            self.secrets.delete(secret_name(account))
            return None
        if not answer.get("exists"):
            return None
        record = self._account_record(account)
        if not answer.get("mine") or not record.exists():
            return f"kept the local account {account}: vmshare did not create it"
        checked(
            self.runner.run(scripts.account_remove_script(account)), f"remove account {account}"
        )
        self.secrets.delete(secret_name(account))
        record.unlink()
        return None

    def _account_record(self, account: str) -> Path:
        assert self.secrets is not None
        return self.secrets.directory.parent / "accounts" / f"windows-{account}.json"

    # ------------------------------------------------------------------- shares

    def smb_share(self, settings: dict[str, Any], share: dict[str, Any]) -> None:
        """NTFS rights first, then the share: it never opens onto a folder the account
        cannot use. Read-only holds at the share (read access only) and in NTFS."""
        name, path, account = share["entry_id"], share["path"], settings["account"]
        readonly = bool(share["readonly"])
        checked(
            self.runner.run(scripts.rights_script(path, account, readonly)),
            f"give {account} rights on {path}",
        )
        self.exporter.export(name, path, account, readonly=readonly)

    def smb_unshare(self, settings: dict[str, Any], entry_id: str, path: str = "") -> None:
        """The share and the account's NTFS rights; ``path``, the share's folder, is where the
        rights are taken back when the share is not there (its step failed part-way)."""
        account = settings["account"]
        checked(
            self.runner.run(scripts.unrights_script(entry_id, account, path)),
            f"take {account}'s rights back from share {entry_id}",
        )
        self.exporter.unexport(entry_id)

    def export_entries(self, action: str, args: dict[str, Any]) -> dict[str, str]:
        """vmshare's SMB shares on the host (by their names): name -> folder."""
        found = self._run(scripts.shares_script(), "list the host's SMB shares")
        return {
            str(row["Name"]): str(row["Path"])
            for row in found
            if str(row.get("Name", "")).startswith(TAG_PREFIX)
        }

    def nfs_export(self, exporter: str, settings: dict[str, Any], export: dict[str, Any]) -> None:
        raise UsageError(NO_NFS, hint="use --protocol smb (or auto)")

    def nfs_unexport(self, exporter: str, settings: dict[str, Any], entry_id: str) -> None:
        raise UsageError(NO_NFS, hint="use --protocol smb (or auto)")


def step_script(action: str, args: dict[str, Any]) -> str | None:
    """The exact PowerShell a host step of ``WindowsHost`` runs, for the plan to show; scripts
    are separated by a blank line. No secret is in any of them (a password goes on stdin)."""
    if action == "mkdir":
        return scripts.mkdir_script(args["path"])
    if action == "rmdir_empty":
        return "\n\n".join(scripts.rmdir_script(p) for p in (args["path"], *args["parents"]))
    settings = args.get("settings", {})
    account = settings.get("account", "")
    if action == "smb_account":
        if not settings.get("dedicated", True):
            return None
        return scripts.account_script(account) + "\n# (the password arrives on standard input)"
    if action == "smb_account_remove":
        if not settings.get("dedicated", True):
            return scripts.account_query_script(account)
        return (
            scripts.account_query_script(account)
            + "\n# then, if vmshare made it and no share grants it anything:\n"
            + scripts.account_remove_script(account)
        )
    if action == "smb_share":
        share = args["share"]
        exporter = WindowsSmbExporter(_NoRunner())
        return (
            scripts.rights_script(share["path"], account, bool(share["readonly"]))
            + "\n\n"
            + exporter.share_script(share["entry_id"], share["path"], account, share["readonly"])
        )
    if action == "smb_unshare":
        exporter = WindowsSmbExporter(_NoRunner())
        return (
            scripts.unrights_script(args["entry_id"], account, args.get("path", ""))
            + "\n\n"
            + exporter.unshare_script(args["entry_id"])
        )
    return None


class _NoRunner:
    """The exporter's scripts are pure: building them runs nothing."""

    def run(self, script: str, *, timeout: float = 120) -> PsResult:
        raise AssertionError("a script was run while only being rendered")
