"""Windows guest side of a share: SMB mappings made through PowerShell over the guest channel.

SKELETON: no Windows guest exists in the test bed yet, so this code is exercised only by unit
tests (scripts parsed by tree-sitter-powershell, hostile values decoded back out of their
literals, a fake channel answering canned JSON). It offers the Linux guest's action names with
the same keyword arguments, so the steps a plan or a journal names run here unchanged:

- ``mount`` maps the SMB share for now (``New-SmbMapping``, not persistent), ``fstab_add`` makes
  the mapping persistent (re-made with ``-Persistent $true``) and records vmshare's entry id in
  ``C:\\ProgramData\\vmshare\\mappings``; ``fstab_remove`` removes the persistent mapping
  (``-UpdateProfile``) and the record; ``unmount`` removes the mapping.
- Targets are a drive letter (``X:``), mapped directly, or a folder (``C:\\mnt\\src``): the
  share is connected by UNC path and the folder becomes a directory symbolic link to it.
- ``write_credentials`` keeps the account and its password in a file only SYSTEM and the
  Administrators can read, the password encrypted with DPAPI for the user the channel runs as;
  the password reaches the guest on stdin, and the mount scripts read the file in the guest, so
  it is never in an argv, a script text or a log.

Why ``New-SmbMapping`` and not ``New-PSDrive -Persist``: it maps a UNC path with no drive letter
too (folder targets), takes ``-Persistent`` as a switch that maps onto the fstab entry, and
``Get-SmbMapping`` reports each mapping's local and remote path for ``inspect``.

Caveat to settle with a real guest: mappings belong to the logon session of the user the
guest channel runs as (SYSTEM for most guest agents); an interactive user sees a folder target
(the symbolic link), but not a drive letter mapped by another user.

Every value reaches PowerShell as a single-quoted literal through ``vmshare.formats.powershell``
(``assign``/``command``); scripts print one JSON document (``ConvertTo-Json``), and a failure is
one stderr line, mapped to ``GuestError`` with a hint.
"""

from __future__ import annotations

import json
import ntpath
import re
import secrets
import unicodedata
from collections.abc import Sequence
from typing import Any

from vmshare.errors import GuestError, UsageError
from vmshare.facts import GuestFacts, GuestMount
from vmshare.formats.powershell import Var, assign, command, encoded_command, pipeline, script
from vmshare.guest.channel import GuestChannel, GuestResult
from vmshare.secrets import SecretStore

POWERSHELL = "powershell.exe"
# A guest channel starts the process directly (no cmd.exe): CreateProcess takes 32767 characters.
MAX_COMMAND_LINE = 32767
VMSHARE_DIR = "C:\\ProgramData\\vmshare"
CREDENTIALS_DIR = VMSHARE_DIR + "\\credentials"
MAPPINGS_DIR = VMSHARE_DIR + "\\mappings"
SMB_TYPES = ("cifs", "smb", "smb3")  # the plan's fstype for an SMB share

_DRIVE = re.compile(r"[A-Za-z]:\\?")
_FOLDER = re.compile(r"[A-Za-z]:\\.+")
_FORBIDDEN_IN_PATH = set('<>"/|?*:')  # after the drive; ':' would name an alternate stream
_ENTRY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SERVER = re.compile(r"[A-Za-z0-9.:_-]{1,255}")

_OUTPUT_UTF8 = "[Console]::OutputEncoding = [System.Text.Encoding]::UTF8"
_HINT = (
    "see the guest's message; the Windows guest needs PowerShell 5.1 or later with the "
    "SmbShare module, and a guest channel that runs as an administrator"
)


def _control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


def windows_path(path: str) -> str:
    """A drive (``X:``) or an absolute folder (``C:\\mnt\\src``); refuse anything else.

    Quotes and ``$`` are allowed (Windows names may hold them): they reach PowerShell only as
    literals. Refused: control characters, the characters Windows forbids in names, ``.`` and
    ``..`` components, and device or UNC paths (``\\\\?\\``, ``\\\\server``)."""
    if _control(path) or "\0" in path:
        raise UsageError(
            "a Windows guest path contains a control character",
            hint=r"use a drive letter (X:) or a folder like C:\mnt\src",
        )
    if _DRIVE.fullmatch(path):
        return path[:2].upper()
    if not _FOLDER.fullmatch(path):
        raise UsageError(
            f"not a Windows drive or absolute folder: {path!r}",
            hint=r"use a drive letter (X:) or a folder like C:\mnt\src",
        )
    parts = path[3:].rstrip("\\").split("\\")
    bad = sorted(set(path[2:]) & _FORBIDDEN_IN_PATH)
    if bad or any(p in ("", ".", "..") or p != p.rstrip(" .") for p in parts):
        raise UsageError(
            f"Windows guest path {path!r} has a forbidden character or an empty, '.', '..' or "
            "trailing-dot component",
            hint='Windows names cannot contain <>"/|?*: or end in a dot or a space',
        )
    return path[:3] + "\\".join(parts)


def is_drive(path: str) -> bool:
    return bool(_DRIVE.fullmatch(path))


def unc_path(source: str) -> str:
    """``//server/share`` (the plan's cifs source) or ``\\\\server\\share`` as a UNC path."""
    parts = source.replace("/", "\\").split("\\")
    if len(parts) != 4 or parts[:2] != ["", ""]:
        raise UsageError(
            f"not an SMB share path: {source!r}", hint=r"an SMB source is //server/share"
        )
    server, share = parts[2], parts[3]
    if not _SERVER.fullmatch(server) or not share or _control(share):
        raise UsageError(f"not an SMB share path: {source!r}", hint="check the server name")
    if set(share) & set('"/\\[]:|<>+=;,*?'):
        raise UsageError(f"SMB share name in {source!r} has a forbidden character")
    return f"\\\\{server}\\{share}"


def plan_source(unc: str) -> str:
    """The plan's spelling (``//server/share``) of a UNC path, as mounts are compared."""
    return unc.replace("\\", "/")


def guest_file(path: str) -> str:
    """Where a file the plan names (``/etc/vmshare/NAME``, Linux's credentials folder) lives in
    a Windows guest: vmshare's folder under ProgramData. A Windows path stays as it is."""
    if path.startswith("/"):
        name = path.rsplit("/", 1)[-1]
        if not _ENTRY_ID.fullmatch(name):
            raise UsageError(f"not a vmshare file name: {name!r}")
        return f"{CREDENTIALS_DIR}\\{name}"
    return windows_path(path)


def _entry_id(entry_id: str) -> str:
    if not _ENTRY_ID.fullmatch(entry_id):
        raise UsageError(f"not a vmshare entry id: {entry_id!r}")
    return entry_id


def _credentials_of(options: Sequence[str]) -> str:
    for option in options:
        if option.startswith("credentials="):
            return guest_file(option.partition("=")[2])
    raise GuestError(
        "a Windows guest maps an SMB share only with vmshare's credentials file",
        hint="the plan writes it first (write_credentials); run the command again",
    )


def _ancestors(path: str) -> list[str]:
    """The folders above a Windows folder, nearest first, without the drive root."""
    found: list[str] = []
    current = ntpath.dirname(path)
    while len(current) > 3:
        found.append(current)
        current = ntpath.dirname(current)
    return found


def _json(value_code: str) -> str:
    """Print a value as one compact JSON document."""
    return pipeline(value_code, command("ConvertTo-Json", Compress=True, Depth=5))


def _get_item(variable: str) -> str:
    return command(
        "Get-Item", LiteralPath=Var(variable), Force=True, ErrorAction="SilentlyContinue"
    )


# Script fragments shared by several scripts. $local: the drive or folder; $remote: UNC path.
_FIND_MAPPING = pipeline(
    command("Get-SmbMapping"),
    command("Where-Object", Property="LocalPath", EQ=True, Value=Var("local")),
)
_FIND_REMOTE = pipeline(
    command("Get-SmbMapping"),
    command("Where-Object", Property="RemotePath", EQ=True, Value=Var("remote")),
)
# Reads the credentials file ($cred) written by write_credentials into $user and $password.
_READ_CREDENTIALS = (
    "$c = "
    + pipeline(command("Get-Content", LiteralPath=Var("cred"), Raw=True), "ConvertFrom-Json"),
    "$user = $c.account",
    "$sealed = $c.password",
    "$secure = " + command("ConvertTo-SecureString", String=Var("sealed")),
    "$password = [System.Net.NetworkCredential]::new('', $secure).Password",
)
# What is at $local now: $current is the UNC path of the mapping at the drive, or of the
# symbolic link at the folder; $null when nothing is mapped there.
_CURRENT = (
    "$current = $null",
    "if ($drive) {",
    f"$m = {_FIND_MAPPING}",
    "if ($m) { $current = $m.RemotePath }",
    "} else {",
    f"$item = {_get_item('local')}",
    "if ($item -and $item.LinkType -eq 'SymbolicLink') { $current = @($item.Target)[0] }",
    "}",
)
_NOT_OURS = (
    "if ($current -and $current -ne $remote) "
    "{ throw ($local + ' is mapped to ' + $current + ', not to ' + $remote) }"
)


def _map(persistent: bool) -> list[str]:
    """Map $remote (at $local when it is a drive) with the credentials; a folder target then
    becomes a symbolic link to the share (an empty folder there is replaced by it)."""
    mapping: dict[str, Any] = {
        "RemotePath": Var("remote"),
        "UserName": Var("user"),
        "Password": Var("password"),
        "Persistent": persistent,
    }
    return [
        *_READ_CREDENTIALS,
        "if ($drive) {",
        pipeline(command("New-SmbMapping", LocalPath=Var("local"), **mapping), "Out-Null"),
        "} else {",
        f"if (-not ({_FIND_REMOTE})) {{",
        pipeline(command("New-SmbMapping", **mapping), "Out-Null"),
        "}",
        f"$item = {_get_item('local')}",
        "if ($item -and $item.LinkType -ne 'SymbolicLink') {",
        "if ("
        + pipeline(
            command("Get-ChildItem", LiteralPath=Var("local"), Force=True),
            command("Select-Object", First=1),
        )
        + ") { throw ('the mount point ' + $local + ' is not empty') }",
        "[System.IO.Directory]::Delete($local)",
        "$item = $null",
        "}",
        "if (-not $item) {",
        pipeline(
            command("New-Item", ItemType="SymbolicLink", Path=Var("local"), Value=Var("remote")),
            "Out-Null",
        ),
        "}",
        "}",
    ]


def _unmap(update_profile: bool) -> list[str]:
    """Take away the mapping at $local (the link too, leaving an empty folder); with
    ``update_profile`` Windows also forgets it for the next logon."""
    return [
        *_CURRENT,
        "if ($current) {",
        "$remote = $current",
        "if (-not $drive) {",
        "[System.IO.Directory]::Delete($local)",
        "[System.IO.Directory]::CreateDirectory($local) | Out-Null",
        "}",
        "if ($drive) { $m = @(" + _FIND_MAPPING + ") } else { $m = @(" + _FIND_REMOTE + ") }",
        "if ($m) {",
        pipeline(
            "$m",
            command("Remove-SmbMapping", Force=True, UpdateProfile=update_profile),
        ),
        "}",
        "}",
    ]


class WindowsGuest:
    """The guest actions (same names and arguments as ``LinuxGuest``) on a Windows guest.

    A skeleton, exercised only by unit tests until a Windows guest exists in the test bed.
    """

    def __init__(self, channel: GuestChannel, vm: str, secrets: SecretStore | None = None) -> None:
        self.channel = channel
        self.vm = vm
        self.secrets = secrets

    # ------------------------------------------------------------------ running scripts

    @staticmethod
    def script(lines: Sequence[str]) -> str:
        """The complete script for ``lines``: stop on the first error, UTF-8 output."""
        return script(_OUTPUT_UTF8, *lines)

    def _run(self, lines: Sequence[str], what: str, input: bytes | None = None) -> GuestResult:
        argv = encoded_command(self.script(lines), POWERSHELL, MAX_COMMAND_LINE)
        result = self.channel.run(argv, input=input)
        if result.exit_code != 0:
            raise GuestError(f"{what} in VM {self.vm!r} failed: {result.error_line}", hint=_HINT)
        return result

    def _query(self, lines: Sequence[str], what: str) -> Any:
        """Run a script whose last output line is one JSON document, and decode it."""
        result = self._run(lines, what)
        text = result.stdout.decode("utf-8", "replace").strip()
        last = text.splitlines()[-1] if text else ""
        try:
            return json.loads(last)
        except ValueError:
            raise GuestError(
                f"{what} in VM {self.vm!r}: PowerShell did not answer with JSON",
                hint="a PowerShell profile or module may print to the output; check the guest",
            ) from None

    @staticmethod
    def _target(target: str) -> list[str]:
        local = windows_path(target)
        return [assign("local", local), assign("drive", is_drive(local))]

    # ----------------------------------------------------------------- read-only probes

    @staticmethod
    def inspect_lines(targets: Sequence[str]) -> list[str]:
        folders = [windows_path(t) for t in targets]
        links = [f for f in folders if not is_drive(f)]
        paths = list(dict.fromkeys(p for f in links for p in (f, *_ancestors(f))))
        return [
            assign("paths", paths),
            assign("links", links),
            assign("entries", MAPPINGS_DIR),
            "$mappings = @("
            + pipeline(
                command("Get-SmbMapping"),
                command("Select-Object", Property=["LocalPath", "RemotePath", "Status"]),
            )
            + ")",
            "$linked = @{}",
            "foreach ($p in $links) {",
            f"$item = {_get_item('p')}",
            "if ($item -and $item.LinkType -eq 'SymbolicLink') "
            "{ $linked[$p] = @($item.Target)[0] }",
            "}",
            "$dirs = @(foreach ($p in $paths) { if ("
            + command("Test-Path", LiteralPath=Var("p"), PathType="Container")
            + ") { $p } })",
            "$recorded = @{}",
            f"if ({command('Test-Path', LiteralPath=Var('entries'))}) {{",
            "foreach ($f in @("
            + command("Get-ChildItem", LiteralPath=Var("entries"), Filter="*.json")
            + ")) {",
            "$file = $f.FullName",
            "$recorded[$f.BaseName] = "
            + pipeline(
                command("Get-Content", LiteralPath=Var("file"), Raw=True), "ConvertFrom-Json"
            ),
            "}",
            "}",
            "$route = "
            + pipeline(
                command(
                    "Get-NetRoute", DestinationPrefix="0.0.0.0/0", ErrorAction="SilentlyContinue"
                ),
                command("Sort-Object", Property="RouteMetric"),
                command("Select-Object", First=1),
            ),
            "$gateway = $null",
            "if ($route) { $gateway = $route.NextHop }",
            _json(
                "@{mappings = $mappings; links = $linked; dirs = $dirs; entries = $recorded; "
                "gateway = $gateway}"
            ),
        ]

    def inspect(self, targets: Sequence[str]) -> GuestFacts:
        """SMB mappings (drive letters and folder links), vmshare's persistent entries, the
        default route, and which of ``targets`` and their parent folders exist."""
        data = self._query(self.inspect_lines(targets), "reading SMB mappings")
        if not isinstance(data, dict):
            raise GuestError(
                f"reading SMB mappings in VM {self.vm!r}: unexpected answer", hint=_HINT
            )
        mounts: dict[str, GuestMount] = {}
        mappings = data.get("mappings") or []
        for mapping in mappings if isinstance(mappings, list) else [mappings]:
            local = str(mapping.get("LocalPath") or "").upper()
            if local:
                source = plan_source(str(mapping.get("RemotePath", "")))
                mounts[local] = GuestMount(source=source, target=local, fstype="smb", options=[])
        for local, remote in (data.get("links") or {}).items():
            mounts[local] = GuestMount(
                source=plan_source(str(remote)), target=local, fstype="smb", options=[]
            )
        entries = {
            str(entry): f"{info.get('source', '?')} {info.get('target', '?')} smb persistent"
            for entry, info in (data.get("entries") or {}).items()
            if isinstance(info, dict)
        }
        gateway = data.get("gateway")
        return GuestFacts(
            reachable=True,
            channel=self.channel.name,
            mounts=mounts,
            fstab_entries=entries,
            existing_dirs=[str(d) for d in data.get("dirs") or []],
            gateway=str(gateway) if gateway else None,
        )

    def mounted(self, target: str) -> GuestMount | None:
        return self.inspect([target]).mounts.get(windows_path(target))

    # ------------------------------------------------------------------------ actions

    def mkdir(self, path: str) -> None:
        """Create the folder and its parents; a drive letter needs none (mapping makes it)."""
        local = windows_path(path)
        if is_drive(local):
            return
        self._run(
            [assign("path", local), "[System.IO.Directory]::CreateDirectory($path) | Out-Null"],
            f"creating {local}",
        )

    @staticmethod
    def rmdir_lines(path: str, parents: Sequence[str] = ()) -> list[str]:
        folders = [f for f in (windows_path(p) for p in (path, *parents)) if not is_drive(f)]
        return [
            assign("folders", folders),
            "$left = $null",
            "foreach ($d in $folders) {",
            f"if (-not ({command('Test-Path', LiteralPath=Var('d'), PathType='Container')})) "
            "{ continue }",
            "if ("
            + pipeline(
                command("Get-ChildItem", LiteralPath=Var("d"), Force=True),
                command("Select-Object", First=1),
            )
            + ") { $left = $d; break }",
            "[System.IO.Directory]::Delete($d)",
            "}",
            _json("@{left = $left}"),
        ]

    def rmdir_empty(self, path: str, parents: Sequence[str] = ()) -> str | None:
        """Remove ``path`` and then ``parents``, each only while empty (never recursively)."""
        data = self._query(self.rmdir_lines(path, parents), f"removing {path} in the guest")
        left = data.get("left") if isinstance(data, dict) else None
        return f"left {left} in the guest: it is not empty" if left else None

    @staticmethod
    def mount_lines(
        source: str, target: str, options: Sequence[str], persistent: bool
    ) -> list[str]:
        return [
            *WindowsGuest._target(target),
            assign("remote", unc_path(source)),
            assign("cred", _credentials_of(options)),
            *_CURRENT,
            _NOT_OURS,
            *(
                # Re-made persistent: a mapping's persistence cannot be changed in place.
                ["if ($current) {", *_unmap(update_profile=False), "$current = $null", "}"]
                if persistent
                else []
            ),
            "if (-not $current) {",
            *_map(persistent),
            "}",
        ]

    def mount(
        self,
        source: str,
        target: str,
        fstype: str,
        options: list[str],
        fallbacks: list[tuple[str, list[str]]] | None = None,
    ) -> None:
        """Map the SMB share ``source`` at ``target`` for now (``fstab_add`` makes it
        persistent). ``fallbacks`` are for Linux mount types; Windows negotiates SMB itself."""
        if fstype not in SMB_TYPES:
            raise GuestError(
                f"a Windows guest mounts SMB shares only, not {fstype}",
                hint="use --protocol smb for a Windows guest",
            )
        self._run(self.mount_lines(source, target, options, False), f"mapping {target}")

    def unmount(self, target: str) -> None:
        """Remove the mapping at ``target`` (a folder target's link goes, its folder stays)."""
        self._run(
            [*self._target(target), "$remote = $null", *_unmap(update_profile=False)],
            f"unmapping {target}",
        )

    @staticmethod
    def probe_lines(target: str, writable: bool, token: str) -> list[str]:
        lines = [
            *WindowsGuest._target(target),
            "$root = $local",
            "if ($drive) { $root = $local + '\\' }",
        ]
        if not writable:
            return [
                *lines,
                pipeline(command("Get-ChildItem", LiteralPath=Var("root"), Force=True), "Out-Null"),
            ]
        return [
            *lines,
            assign("token", token),
            "$f = [System.IO.Path]::Combine($root, '.vmshare-probe.' + $token)",
            "[System.IO.File]::WriteAllText($f, $token)",
            "$got = [System.IO.File]::ReadAllText($f)",
            "[System.IO.File]::Delete($f)",
            "if ($got -ne $token) "
            "{ throw ('read back ' + $got.Length + ' characters, not what was written') }",
        ]

    def probe(self, target: str, writable: bool) -> None:
        what = f"write/read probe of {target}" if writable else f"read probe of {target}"
        self._run(self.probe_lines(target, writable, secrets.token_hex(8)), what)

    def fstab_add(
        self,
        entry_id: str,
        source: str,
        target: str,
        fstype: str,
        options: list[str],
        follow_mount: bool = False,
    ) -> None:
        """The persistent mapping (Windows' fstab): the share is re-mapped with
        ``-Persistent $true`` and vmshare's entry recorded under ProgramData."""
        if fstype not in SMB_TYPES:
            raise GuestError(
                f"a Windows guest mounts SMB shares only, not {fstype}",
                hint="use --protocol smb for a Windows guest",
            )
        self._run(
            self.fstab_add_lines(entry_id, source, target, options),
            f"mapping {target} persistently",
        )

    @staticmethod
    def fstab_add_lines(
        entry_id: str, source: str, target: str, options: Sequence[str]
    ) -> list[str]:
        record = ntpath.join(MAPPINGS_DIR, _entry_id(entry_id) + ".json")
        return [
            *WindowsGuest.mount_lines(source, target, options, True),
            assign("folder", MAPPINGS_DIR),
            assign("record", record),
            assign("source", plan_source(unc_path(source))),
            "[System.IO.Directory]::CreateDirectory($folder) | Out-Null",
            "$tmp = $record + '.tmp'",
            pipeline(
                "@{source = $source; target = $local; remote = $remote}",
                command("ConvertTo-Json", Compress=True),
                command("Set-Content", LiteralPath=Var("tmp"), Encoding="UTF8"),
            ),
            command("Move-Item", LiteralPath=Var("tmp"), Destination=Var("record"), Force=True),
        ]

    @staticmethod
    def fstab_remove_lines(entry_id: str) -> list[str]:
        record = ntpath.join(MAPPINGS_DIR, _entry_id(entry_id) + ".json")
        return [
            assign("record", record),
            f"if ({command('Test-Path', LiteralPath=Var('record'))}) {{",
            "$e = "
            + pipeline(
                command("Get-Content", LiteralPath=Var("record"), Raw=True), "ConvertFrom-Json"
            ),
            "$local = $e.target",
            "$drive = $local.Length -eq 2",
            *_unmap(update_profile=True),
            command("Remove-Item", LiteralPath=Var("record"), Force=True),
            "}",
        ]

    def fstab_remove(self, entry_id: str) -> None:
        """Remove the persistent mapping and vmshare's record of it (gone already is fine)."""
        self._run(self.fstab_remove_lines(entry_id), "removing a vmshare persistent mapping")

    @staticmethod
    def write_credentials_lines(path: str, account: str) -> list[str]:
        file = guest_file(path)
        return [
            assign("path", file),
            assign("folder", ntpath.dirname(file)),
            assign("account", account),
            "$plain = [Console]::In.ReadToEnd().Trim()",
            "$secure = "
            + command("ConvertTo-SecureString", String=Var("plain"), AsPlainText=True, Force=True),
            "$sealed = " + command("ConvertFrom-SecureString", SecureString=Var("secure")),
            "[System.IO.Directory]::CreateDirectory($folder) | Out-Null",
            # Only SYSTEM and the Administrators, not inherited: set before the file exists.
            command(
                "icacls",
                Var("folder"),
                "/inheritance:r",
                "/grant:r",
                "*S-1-5-18:(OI)(CI)F",
                "*S-1-5-32-544:(OI)(CI)F",
            )
            + " | Out-Null",
            "if ($LASTEXITCODE -ne 0) { throw ('icacls failed on ' + $folder) }",
            "$tmp = $path + '.tmp'",
            pipeline(
                "@{account = $account; password = $sealed}",
                command("ConvertTo-Json", Compress=True),
                command("Set-Content", LiteralPath=Var("tmp"), Encoding="UTF8"),
            ),
            command("Move-Item", LiteralPath=Var("tmp"), Destination=Var("path"), Force=True),
        ]

    def write_credentials(self, path: str, account: str, secret_name: str) -> None:
        """The account and its password (DPAPI-sealed) in a file only SYSTEM and the
        Administrators can read; the password travels on stdin only."""
        if self.secrets is None:
            raise GuestError("no secret store for guest credentials")
        password = self.secrets.get_or_create(secret_name).reveal()
        self._run(
            self.write_credentials_lines(path, account),
            f"writing {guest_file(path)}",
            input=password.encode("utf-8"),
        )

    @staticmethod
    def remove_file_lines(path: str) -> list[str]:
        file = guest_file(path)
        own = ntpath.dirname(file) if ntpath.dirname(file) == CREDENTIALS_DIR else ""
        return [
            assign("path", file),
            assign("own", own),
            f"if ({command('Test-Path', LiteralPath=Var('path'))}) "
            f"{{ {command('Remove-Item', LiteralPath=Var('path'), Force=True)} }}",
            "if ($own -and ("
            + command("Test-Path", LiteralPath=Var("own"))
            + ") -and -not ("
            + pipeline(
                command("Get-ChildItem", LiteralPath=Var("own"), Force=True),
                command("Select-Object", First=1),
            )
            + ")) { [System.IO.Directory]::Delete($own) }",
        ]

    def remove_file(self, path: str) -> None:
        """Remove ``path``; vmshare's credentials folder goes with its last file."""
        self._run(self.remove_file_lines(path), f"removing {guest_file(path)}")
