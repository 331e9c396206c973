"""NFS: the host exports the folder to the VM's address only; the guest mounts it over TCP.

Exporters (one file format each, vmshare's own marked entries, reload without a restart):
kernel nfsd (/etc/exports.d/vmshare.exports + ``exportfs -ra``), nfs-ganesha (an included file
of EXPORT blocks + SIGHUP) and macOS (a block in /etc/exports + ``nfsd checkexports``/``update``).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from abc import abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from vmshare import hostexec
from vmshare.errors import HostCommandError, ServerNotRunning, UsageError
from vmshare.formats import ownedblock
from vmshare.fsutil import read_text
from vmshare.host import liveness, rootfiles
from vmshare.host.liveness import Liveness
from vmshare.protocols.exportfile import MainConfig, OwnedConfigFile
from vmshare.spec import NfsHost

# Measured on vmshare's own share (nfs-ganesha): benchmarks/semantics.py, docs/semantics.md.
SEMANTICS = (
    "NFSv4: near-POSIX, but every guest user, root included, acts as the share's owner "
    "(all_squash: files are created as the owner, chown and device nodes are refused, and "
    "permission bits do not stop another guest user); an open file that is deleted keeps a .nfs "
    "name and a link count of 1 until closed; a symlink's own times cannot be set"
)
# Measured through nfs-ganesha 4.3 (tests/integration/test_edited_files.py); kernel nfsd has no
# export option against it either (nosuid is a client mount option only).
SETUID_WARNING = (
    "guest users can set setuid/setgid bits on files in this share (neither nfs-ganesha nor the "
    "kernel NFS server can refuse them); on the host those files run as their owner, so keep "
    "the folder out of host users' reach or use smb, which never stores them"
)
# Host edits reach the guest fast: the client caches attributes for 1 s at most (actimeo=1)
# and ganesha's exports not at all (Attr_Expiration_Time = 0); measured: a guest reader polling
# every 10 ms saw a host rewrite after p95 0.11 s (docs/semantics.md, benchmarks/visibility.py).
NEGOTIATION = "NFSv4.2, falling back to 4.1 and then 3 if the server refuses"
# Why auto takes nfs before smb: benchmarks/defaults.py, one interleaved run of both with
# vmshare's options (docs/performance.md, "Defaults by measurement").
MEASURED = (
    "measured faster than smb on writes (1.6x), reads (3.1x) and file creation (2.8x), slower on "
    "a warm tree walk (0.15x); benchmarks/defaults.py"
)


@dataclass(frozen=True)
class NfsExport:
    entry_id: str
    path: str
    client: str  # one address, or a network the user asked for; never everyone
    readonly: bool
    anonuid: int
    anongid: int

    def as_args(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fsid(self) -> str:
        """A UUID stable per exported path (kernel nfsd's fsid=)."""
        return str(uuid.UUID(hashlib.sha256(self.path.encode()).hexdigest()[:32]))

    @property
    def export_number(self) -> int:
        """ganesha's Export_Id, 1000..60999 (0 and 1 are reserved): stable per share and path,
        because ganesha refuses to reuse an id for another path within one reload."""
        key = f"{self.entry_id}\0{self.path}".encode()
        return 1000 + int(hashlib.sha256(key).hexdigest()[:8], 16) % 60000


class NfsExporter(OwnedConfigFile):
    name: ClassVar[str]
    default_file: ClassVar[str]

    def __init__(self, settings: NfsHost) -> None:
        self.settings = settings

    @property
    def path(self) -> Path:
        return Path(self.settings.exports_file or self.default_file)

    @abstractmethod
    def render(self, export: NfsExport) -> str:
        """The export's entry in this server's file format, for exactly one path and client."""

    def remote_path(self, export: NfsExport) -> str:
        """What the guest mounts after ``host:``."""
        return export.path

    def export(self, export: NfsExport) -> None:
        body = self.render(export)
        self.prepare()
        self.edit(lambda text: ownedblock.with_entry(text, export.entry_id, body))

    def unexport(self, entry_id: str) -> None:
        self.edit(lambda text: ownedblock.without_entry(text, entry_id), removing=True)

    def prepare(self) -> None:
        """Make sure the server reads vmshare's file at all."""


def _octal_escape(path: str) -> str:
    """exports(5) path: every byte outside a plain set as \\ooo, which exportfs decodes."""
    plain = re.compile(rb"[A-Za-z0-9/._+,=:@-]")
    return "".join(
        chr(b) if plain.fullmatch(bytes([b])) else f"\\{b:03o}" for b in path.encode("utf-8")
    )


# what nfs-utils' xgettok decodes as \ooo (a value below 256)
_DECODED_AGAIN = re.compile(r"\\[0-3][0-7]{2}")


class KernelNfsExporter(NfsExporter):
    name = "kernel"
    default_file = "/etc/exports.d/vmshare.exports"

    def render(self, export: NfsExport) -> str:
        if _DECODED_AGAIN.search(export.path):
            # exportfs decodes \ooo in what it has already decoded: the \134 vmshare writes for
            # this backslash would turn back into it and then, with the digits, into one byte
            raise UsageError(
                f"the kernel NFS server cannot export {export.path!r}: exportfs reads a "
                "backslash followed by three octal digits as one character",
                hint="rename the folder, or use nfs-ganesha ([nfs] exporter in host.toml)",
            )
        options = [
            "ro" if export.readonly else "rw",
            "sync",
            "no_subtree_check",
            "all_squash",
            f"anonuid={export.anonuid}",
            f"anongid={export.anongid}",
            f"fsid={export.fsid}",
            "sec=sys",
        ]
        return f"{_octal_escape(export.path)} {export.client}({','.join(options)})"

    def liveness(self) -> Liveness:
        return liveness.kernel_nfsd()

    def reload(self) -> None:
        """``exportfs -ra`` (it syncs the export table whether nfsd runs or not), then whether
        nfsd runs to serve it."""
        try:
            hostexec.run(["exportfs", "-ra"], privileged=True, timeout=hostexec.RELOAD)
        except HostCommandError as exc:
            if "not found" in exc.message:
                raise HostCommandError(
                    "exportfs not found: the kernel NFS server is not installed",
                    hint="apt install nfs-kernel-server, or set [nfs] exporter in host.toml",
                ) from None
            if (evidence := self.liveness()).running is False:
                raise self.not_running(evidence) from None
            raise
        if (evidence := self.liveness()).running is False:
            raise self.not_running(evidence)

    def not_running(self, evidence: Liveness) -> ServerNotRunning:
        return ServerNotRunning(
            f"the kernel NFS server is not running ({evidence.detail})",
            hint="start it: systemctl start nfs-server (on Debian nfs-kernel-server)",
        )


class GaneshaExporter(NfsExporter):
    name = "ganesha"
    default_file = "/etc/ganesha/vmshare-exports.conf"

    @staticmethod
    def quote(value: str) -> str:
        """A ganesha config string: double quotes, with \\ and \" escaped (its lexer decodes
        both; an unescaped backslash would be eaten, a bare quote would end the string)."""
        if any(ch in value for ch in "\n\r\x00"):
            raise UsageError(
                f"nfs-ganesha's config cannot carry a line break or NUL: {value!r}",
                hint="rename the folder",
            )
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def remote_path(self, export: NfsExport) -> str:
        return f"{self.settings.pseudo_root.rstrip('/')}/{export.entry_id}"

    def render(self, export: NfsExport) -> str:
        access = "RO" if export.readonly else "RW"
        return "\n".join(
            [
                "EXPORT {",
                f"\tExport_Id = {export.export_number};",
                f"\tPath = {self.quote(export.path)};",
                f"\tPseudo = {self.quote(self.remote_path(export))};",
                "\tProtocols = 4;",
                "\tTransports = TCP;",
                # ganesha caches a file's attributes for 60 s by default, so a host edit stayed
                # invisible to the guest that long whatever its actimeo: always ask the file.
                "\tAttr_Expiration_Time = 0;",
                "\tSecType = sys;",
                "\tAccess_Type = None;",
                "\tSquash = All_Squash;",
                f"\tAnonymous_Uid = {export.anonuid};",
                f"\tAnonymous_Gid = {export.anongid};",
                f"\tCLIENT {{ Clients = {export.client}; Access_Type = {access}; }}",
                "\tFSAL { Name = VFS; }",
                "}",
            ]
        )

    def prepare(self) -> None:
        """Include vmshare's file from ganesha's main config once (unless it already is: a
        second include would load every export twice, and ganesha hangs on duplicate pseudos)."""
        main = Path(self.settings.ganesha_config)
        for included in re.findall(r'^\s*%include\s+"?([^"\n]+?)"?\s*$', read_text(main), re.M):
            if (main.parent / included).resolve() == self.path.resolve():
                return
        if any(ch in str(self.path) for ch in ' "\n\r\x00'):
            raise UsageError(
                f"nfs-ganesha cannot include a file whose path has a space, a quote or a line "
                f"break: {str(self.path)!r}",
                hint="set [nfs] exports_file in host.toml to a path without spaces",
            )
        include = f'%include "{self.path}"'
        main_file = MainConfig(main, self)
        main_file.edit(lambda text: ownedblock.with_entry(text, "include", include), reload=False)

    def unexport(self, entry_id: str) -> None:
        """Remove the export; with the last one, also the include line vmshare added (if it did)
        and then its emptied file, so ganesha's config is as vmshare found it."""
        super().unexport(entry_id)
        if self.entries():
            return
        main = MainConfig(Path(self.settings.ganesha_config), self)
        if main.edit(lambda text: ownedblock.without_entry(text, "include"), removing=True):
            rootfiles.remove(self.path)
            rootfiles.remove(self.path.with_name(self.path.name + ".vmshare-bak"))

    def liveness(self) -> Liveness:
        return liveness.pidfile_process(Path(self.settings.ganesha_pidfile), "ganesha.nfsd")

    def reload(self) -> None:
        """SIGHUP to the pid in ganesha's pidfile, through pkill (one exact command that sudo
        can allow, where a pid would need a wildcard); never to a stale pidfile's pid."""
        before = self.liveness()
        if before.running is False:
            raise self.not_running(before)
        pidfile = Path(self.settings.ganesha_pidfile)
        result = hostexec.run(
            ["pkill", "-HUP", "-F", str(pidfile)],
            privileged=True,
            check=False,
            timeout=hostexec.QUICK,
        )
        if result.returncode == 0:
            return
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        after = self.liveness()
        # pkill runs as root: "pidfile not valid" (none, or no pid in it) and exit 1 without a
        # word (no process has that pid) are what it says of a server that does not run
        if after.running is False or (
            after.running is None
            and result.returncode == 1
            and (not detail or "pidfile not valid" in detail[0])
        ):
            raise self.not_running(after)
        raise HostCommandError(
            f"cannot signal nfs-ganesha to reload ({pidfile}: "
            f"{detail[0] if detail else 'no such process'})",
            hint="is ganesha.nfsd running? set [nfs] ganesha_pidfile in host.toml",
        )

    def not_running(self, evidence: Liveness) -> ServerNotRunning:
        return ServerNotRunning(
            f"nfs-ganesha is not running ({evidence.detail})",
            hint="start it (systemctl start nfs-ganesha); if it runs with another pid file, set "
            "[nfs] ganesha_pidfile in host.toml",
        )


class MacNfsExporter(NfsExporter):
    name = "macos"
    default_file = "/etc/exports"

    def render(self, export: NfsExport) -> str:
        if any(ch in export.path for ch in "\n\r\x00"):  # exports(5) is read line by line
            raise UsageError(
                f"macOS exports cannot carry a line break in a path: {export.path!r}",
                hint="rename the folder",
            )
        quoted = '"' + export.path.replace("\\", "\\\\").replace('"', '\\"') + '"'
        flags = ["-ro"] if export.readonly else []
        flags.append(f"-mapall={export.anonuid}:{export.anongid}")
        if "/" in export.client:
            network = export.client.split("/")
            flags += [f"-network={network[0]}", f"-mask={_netmask(int(network[1]))}"]
            return " ".join([quoted, *flags])
        return " ".join([quoted, *flags, export.client])

    def liveness(self) -> Liveness:
        """``nfsd status``: "nfsd is running" or "nfsd is not running" (exit 1 then)."""
        try:
            status = hostexec.run(["nfsd", "status"], check=False, timeout=hostexec.QUICK)
        except HostCommandError as exc:
            return Liveness(None, exc.message)
        text = (status.stdout + status.stderr).decode("utf-8", "replace")
        if "nfsd is not running" in text:
            return Liveness(False, "nfsd status: nfsd is not running")
        if "nfsd is running" in text:
            return Liveness(True, "nfsd status: nfsd is running")
        return Liveness(None, "nfsd status said neither")

    def reload(self) -> None:
        hostexec.run(["nfsd", "checkexports"], privileged=True, timeout=hostexec.QUICK)
        try:
            hostexec.run(["nfsd", "update"], privileged=True, timeout=hostexec.RELOAD)
        except HostCommandError:
            # launchd may start nfsd by itself once /etc/exports has entries, so only a
            # failed update is taken to mean it does not run (not checked on a Mac here)
            if (evidence := self.liveness()).running is False:
                raise self.not_running(evidence) from None
            raise

    def not_running(self, evidence: Liveness) -> ServerNotRunning:
        return ServerNotRunning(
            f"the macOS NFS server is not running ({evidence.detail})",
            hint="start it: sudo nfsd enable; sudo nfsd start",
        )


def _netmask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((bits >> shift) & 0xFF) for shift in (24, 16, 8, 0))


EXPORTERS: dict[str, type[NfsExporter]] = {
    cls.name: cls for cls in (KernelNfsExporter, GaneshaExporter, MacNfsExporter)
}


def _exists(path: Path) -> bool:
    """Whether the file exists; a folder this user may not enter (ganesha's pid folder, to a
    user running vmshare through sudo) counts as present."""
    try:
        return path.exists()
    except PermissionError:
        return True


def exporter_for(settings: NfsHost) -> NfsExporter:
    """The exporter the settings name; ``auto``: macOS on Darwin, else ganesha if it runs,
    else the kernel server."""
    name = settings.exporter
    if name == "auto":
        if os.uname().sysname == "Darwin":
            name = "macos"
        elif _exists(Path(settings.ganesha_pidfile)):
            name = "ganesha"
        else:
            name = "kernel"
    return EXPORTERS[name](settings)


def guest_mount(export: NfsExport, exporter: NfsExporter, host: str) -> tuple[str, str, list[str]]:
    """(source, fstype, options) for the guest's first try, NFSv4.2; options before user extras.

    The version is always named: without it some mount programs (busybox) settle for 4.0.
    """
    options = ["ro" if export.readonly else "rw", "vers=4.2", *exporter.settings.mount_options]
    if exporter.settings.port:
        options.append(f"port={exporter.settings.port}")
    server = f"[{host}]" if ":" in host else host
    return f"{server}:{exporter.remote_path(export)}", "nfs4", options


def version_fallbacks(options: list[str]) -> list[tuple[str, list[str]]]:
    """What the guest tries when 4.2 is refused: 4.1, then NFSv3."""

    def vers(version: str) -> list[str]:
        return [f"vers={version}" if o.startswith("vers=") else o for o in options]

    return [("nfs4", vers("4.1")), ("nfs", vers("3"))]
