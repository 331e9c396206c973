"""SMB: a Samba share section for the VM's address and one dedicated account; the guest mounts
it with mount.cifs and a 0600 credentials file (the password never goes on a command line).

vmshare's sections live in its own file, included once from smb.conf; the include goes again
when the last section does.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vmshare import hostexec
from vmshare.errors import HostCommandError, ServerNotRunning, UsageError
from vmshare.formats import ownedblock
from vmshare.fsutil import backup_path
from vmshare.host import rootfiles
from vmshare.host.liveness import Liveness, smbcontrol_found_no_smbd
from vmshare.protocols.exportfile import MainConfig, OwnedConfigFile
from vmshare.secret_value import Secret
from vmshare.spec import SmbHost

USERADD = ("--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group")

# Measured on vmshare's own share (Samba): benchmarks/semantics.py, docs/semantics.md.
SEMANTICS = (
    "SMB 3.1.1 without POSIX extensions: chmod and chown are ignored (every file shows mode 0755 "
    "and the mount's uid/gid, so only the mount's uid and root may write); no FIFOs, device "
    "nodes or sockets; names are case-insensitive and cannot hold \\; symlinks made in the "
    "guest are mfsymlinks files on the host; an open file that is deleted keeps its name until "
    "closed; times are kept to 100 ns; no leases, so host edits that change a file's size show "
    "within about a second, but a same-size rewrite in place can stay unseen until the file "
    "changes again (the guest revalidates its cache by time and size)"
)
CREDENTIALS_DIR = "/etc/vmshare"


@dataclass(frozen=True)
class SmbShare:
    entry_id: str
    path: str
    client: str
    readonly: bool
    account: str
    force_user: str
    force_group: str
    encrypt: bool

    def as_args(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def share_name(self) -> str:
        return self.entry_id  # a mount tag: letters, digits and '-' only


def check_path(path: str) -> None:
    """Refuse what an smb.conf value cannot carry: '%' is a substitution, edges are trimmed, and
    Samba reads any run of whitespace inside a value as one space (a folder named "a  b" was
    shared as "a b", which does not exist: tests/contract/exporter.py)."""
    if (
        "%" in path
        or path != path.strip()
        or path.endswith("\\")
        or re.search(r"\s\s|[^\S ]", path)
    ):
        raise UsageError(
            f"Samba cannot share {path!r}: '%', a trailing backslash, spaces at either end, "
            "two spaces in a row or a tab would be read as something else",
            hint="rename the folder, or share it with another protocol",
        )


def _value(text: str) -> str:
    """``text`` as an smb.conf value: Samba trims blanks at either end and substitutes '%'
    (force user = %U would be whoever connects), so neither can be carried; a trailing
    backslash continues the line, so the next option would become part of this value."""
    if any(ch in text for ch in "\n\r\x00%") or text != text.strip() or text.endswith("\\"):
        raise UsageError(
            "an smb.conf value cannot hold a line break, '%', blanks at either end or a "
            f"trailing backslash: {text!r}",
            hint="rename it",
        )
    return text


def render_section(share: SmbShare) -> str:
    check_path(share.path)
    lines = [
        f"[{share.share_name}]",
        f"\tpath = {_value(share.path)}",
        f"\thosts allow = {_value(share.client)}",
        "\thosts deny = ALL",
        f"\tvalid users = {_value(share.account)}",
        f"\tforce user = {_value(share.force_user)}",
        f"\tforce group = {_value(share.force_group)}",
        f"\tread only = {'yes' if share.readonly else 'no'}",
        f"\tsmb encrypt = {'required' if share.encrypt else 'desired'}",
        "\tguest ok = no",
        "\tbrowseable = no",
        # Samba's defaults, pinned against a [global] that widens them: no mode a guest creates
        # can carry a setuid/setgid bit onto the host.
        "\tcreate mask = 0744",
        "\tdirectory mask = 0755",
        "\tforce create mode = 0000",
        "\tforce directory mode = 0000",
        # No oplocks or leases: a lease let a guest reader that kept reopening a file serve its
        # cached copy for as long as it ran, blind to host edits (docs/semantics.md).
        "\toplocks = no",
    ]
    return "\n".join(lines)


class SambaExporter(OwnedConfigFile):
    name = "samba"

    def __init__(self, settings: SmbHost) -> None:
        self.settings = settings

    @property
    def path(self) -> Path:
        return Path(self.settings.include_file)

    def reload(self) -> None:
        result = hostexec.run(
            ["smbcontrol", "-s", self.settings.smb_conf, "smbd", "reload-config"],
            privileged=True,
            check=False,
            timeout=hostexec.RELOAD,
        )
        if result.returncode == 0:
            return
        stderr = result.stderr.decode("utf-8", "replace").strip()
        if smbcontrol_found_no_smbd(stderr):
            raise self.not_running(self._no_smbd())
        lines = stderr.splitlines()
        raise HostCommandError(
            f"smbcontrol failed (exit {result.returncode}): {lines[-1] if lines else 'no output'}",
            hint="see the message above; vmshare changed nothing it did not undo",
        )

    def liveness(self) -> Liveness:
        """smbcontrol's ping (as root; another user cannot message smbd, and is told so)."""
        try:
            ping = hostexec.run(
                ["smbcontrol", "-s", self.settings.smb_conf, "smbd", "ping"],
                check=False,
                timeout=hostexec.QUICK,
            )
        except HostCommandError as exc:
            return Liveness(None, exc.message)
        if ping.returncode == 0:
            return Liveness(True, "smbd answers smbcontrol's ping")
        if smbcontrol_found_no_smbd(ping.stderr.decode("utf-8", "replace")):
            return self._no_smbd()
        return Liveness(None, "smbcontrol cannot ask smbd (not root?)")

    def _no_smbd(self) -> Liveness:
        return Liveness(False, f"smbcontrol finds no smbd for {self.settings.smb_conf}")

    def not_running(self, evidence: Liveness) -> ServerNotRunning:
        return ServerNotRunning(
            f"Samba is not running: {evidence.detail}",
            hint="start it (systemctl start smbd); if it runs with another config, set [smb] "
            "smb_conf in host.toml",
        )

    def share(self, share: SmbShare) -> None:
        body = render_section(share)
        self.edit(lambda text: ownedblock.with_entry(text, share.entry_id, body))
        try:
            self._include(True)
        except Exception:  # smb.conf refused the include: take the section back out
            self.edit(lambda text: ownedblock.without_entry(text, share.entry_id), reload=False)
            self._drop_if_empty()
            raise

    def unshare(self, entry_id: str) -> None:
        self.edit(lambda text: ownedblock.without_entry(text, entry_id), removing=True)
        # A reload alone keeps the share reachable for a client already connected to the
        # server: close it explicitly (an unknown share is not an error).
        hostexec.run(
            ["smbcontrol", "-s", self.settings.smb_conf, "smbd", "close-share", entry_id],
            privileged=True,
            check=False,
            timeout=hostexec.QUICK,
        )
        if not self.entries():
            self._include(False)
            self._drop_if_empty()

    def _drop_if_empty(self) -> None:
        """vmshare's include file (and its backup) go with its last section; a symlink the
        user made there stays, to its emptied target."""
        if self.entries() or self.path.is_symlink():
            return
        rootfiles.remove(backup_path(self.path))
        rootfiles.remove(self.path)

    def _include(self, present: bool) -> None:
        line = f"include = {_value(str(self.path))}"
        main = MainConfig(Path(self.settings.smb_conf), self)
        if present:
            main.edit(lambda text: ownedblock.with_entry(text, "include", line))
        else:
            main.edit(lambda text: ownedblock.without_entry(text, "include"), removing=True)

    def ensure_account(self, secret: Secret) -> dict[str, bool]:
        """The dedicated Unix + Samba account, with the password vmshare keeps; which of the
        two (``unix_user``, ``samba_entry``) this call created."""
        account = self.settings.account
        created = {"unix_user": False, "samba_entry": not self._has_samba_entry()}
        if hostexec.run(["id", "-u", account], check=False, timeout=hostexec.QUICK).returncode != 0:
            created["unix_user"] = True
            hostexec.run(
                ["useradd", *USERADD, account],
                privileged=True,
                timeout=hostexec.QUICK,
            )
        password = secret.reveal().encode()
        try:
            hostexec.run(
                ["smbpasswd", "-c", self.settings.smb_conf, "-s", "-a", account],
                input=password + b"\n" + password + b"\n",
                privileged=True,
                timeout=hostexec.QUICK,
            )
        except HostCommandError as exc:
            if created["unix_user"]:  # nothing records it yet: take it away now
                hostexec.run(
                    ["userdel", account], privileged=True, check=False, timeout=hostexec.QUICK
                )
            raise HostCommandError(
                f"cannot set the Samba password of {account}: {exc.message}", hint=exc.hint
            ) from None
        return created

    def _has_samba_entry(self) -> bool:
        found = hostexec.run(
            ["pdbedit", "-s", self.settings.smb_conf, "-u", self.settings.account],
            check=False,
            privileged=True,
            timeout=hostexec.QUICK,
        )
        return found.returncode == 0

    def account_in_use(self) -> bool:
        """Whether a vmshare share section still lets the account in."""
        line = f"\tvalid users = {self.settings.account}"
        return any(line in body.split("\n") for body in self.entries().values())

    def remove_account(self, unix_user: bool, samba_entry: bool) -> None:
        """Take away the parts of the account that vmshare created."""
        account = self.settings.account
        if samba_entry and self._has_samba_entry():
            hostexec.run(
                ["smbpasswd", "-c", self.settings.smb_conf, "-x", account],
                privileged=True,
                timeout=hostexec.QUICK,
            )
        exists = hostexec.run(["id", "-u", account], check=False, timeout=hostexec.QUICK)
        if unix_user and exists.returncode == 0:
            hostexec.run(["userdel", account], privileged=True, timeout=hostexec.QUICK)


def credentials_path(entry_id: str) -> str:
    return f"{CREDENTIALS_DIR}/{entry_id}.cred"


def credentials_text(account: str, secret: Secret) -> bytes:
    return f"username={account}\npassword={secret.reveal()}\n".encode()


def guest_mount(
    share: SmbShare, settings: SmbHost, host: str, uid: int, gid: int
) -> tuple[str, str, list[str]]:
    """(source, fstype, options) for mount.cifs; options before user extras."""
    options = [
        "ro" if share.readonly else "rw",
        f"credentials={credentials_path(share.entry_id)}",
        *settings.mount_options,
        f"uid={uid}",
        f"gid={gid}",
    ]
    if settings.encrypt:
        options.append("seal")
    if settings.port:
        options.append(f"port={settings.port}")
    server = f"[{host}]" if ":" in host else host
    return f"//{server}/{share.share_name}", "cifs", options


def secret_name(account: str) -> str:
    return f"smb-{account}"
