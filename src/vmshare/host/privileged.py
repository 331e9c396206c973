"""The one list of host commands vmshare runs as root, and the sudoers lines that allow exactly
them (``vmshare doctor --sudoers``).

Run as root, vmshare runs them directly; otherwise through ``sudo -n`` (``hostexec``), by the
absolute path listed here, so a sudoers rule of these lines matches and nothing else is needed.
Server config files that the user cannot write are changed with coreutils at exact paths: the
file is copied to a staged file beside it (``cp -p``: its mode and owner), the new text written
into that copy (``tee STAGED``), the previous version copied to ``.vmshare-bak`` (``cp -p``) and
the staged file renamed over the real one (``mv``), so readers see the old file or the new one,
never half, and the file keeps its mode and owner.

Every argument is exact but one: ``smbcontrol ... close-share TAG``, whose TAG is a regular
expression that matches vmshare's share names only.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from vmshare import hostexec
from vmshare.errors import PrivilegeRefused, UsageError
from vmshare.fsutil import BACKUP_SUFFIX, real_file
from vmshare.hostexec import SUDOERS_HINT, program
from vmshare.spec import HostSettings

STAGED_SUFFIX = ".vmshare-new"
# vmshare's Samba share names (mount tags): vmshare- and 16 hex digits
SHARE_NAME = "vmshare-[0-9a-f]{16}"
SAMPLE_SHARE = "vmshare-0123456789abcdef"  # a name SHARE_NAME matches, for `sudo -l`


@dataclass(frozen=True)
class Privileged:
    """One host command vmshare runs as root: the argv, and which group it belongs to."""

    group: str  # NFS, SMB or FILES: a Cmnd_Alias each
    argv: tuple[str, ...]
    pattern: str | None = None  # a regular expression for the last argument, where exactness
    # cannot be had (the argv's last item is then a placeholder)
    protocol: str = ""  # the protocol that needs it: "nfs" or "smb"


def staged_path(path: Path) -> Path:
    """Where a new version of the (real) config file waits before it is renamed over it."""
    return path.with_name(f".{path.name}{STAGED_SUFFIX}")


def backup_of(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def config_files(settings: HostSettings) -> list[tuple[Path, bool, str]]:
    """Every server config file vmshare may write for these settings, symlinks followed (the
    file that changes is the real one), each with whether vmshare may remove it (its own files
    go with their last entry, a server's main config never) and the protocol it serves."""
    from vmshare.protocols.nfs import GaneshaExporter, MacNfsExporter, exporter_for

    exporter = exporter_for(settings.nfs)
    files = [(exporter.path, not isinstance(exporter, MacNfsExporter), "nfs")]
    if isinstance(exporter, GaneshaExporter):
        files.append((Path(settings.nfs.ganesha_config), False, "nfs"))
    files += [
        (Path(settings.smb.include_file), True, "smb"),
        (Path(settings.smb.smb_conf), False, "smb"),
    ]
    return [(real_file(f), removable, protocol) for f, removable, protocol in files]


# BSD sync takes no file and flushes every file system; coreutils' fsyncs the file or folder given
BSD_SYNC = sys.platform == "darwin"


def _flushes(path: str) -> list[Privileged]:
    """The fsync of a staged file or its folder (host/rootfiles.py ``_flush``)."""
    return [Privileged("FILES", ("sync",) if BSD_SYNC else ("sync", "--", path))]


def file_commands(path: Path, *, removable: bool) -> list[Privileged]:
    """The commands that write and back up one config file, put its backup back, and remove
    the file (``removable``: vmshare's own file, which goes with its last entry) and backup."""
    commands = []
    for target in (path, backup_of(path)):
        staged = str(staged_path(target))
        commands += [
            Privileged("FILES", ("cp", "-p", "--", str(target), staged)),
            Privileged("FILES", ("tee", staged)),
            *_flushes(staged),
            Privileged("FILES", ("mv", "-f", "--", staged, str(target))),
            *_flushes(str(target.parent)),
            Privileged("FILES", ("rm", "-f", "--", staged)),
        ]
        if removable or target != path:
            commands.append(Privileged("FILES", ("rm", "-f", "--", str(target))))
    commands.append(Privileged("FILES", ("cp", "-p", "--", str(path), str(backup_of(path)))))
    return commands


def commands(settings: HostSettings) -> list[Privileged]:
    """THE list: every command vmshare runs as root on this host with these settings."""
    from vmshare.protocols.nfs import GaneshaExporter, KernelNfsExporter, exporter_for
    from vmshare.protocols.smb import USERADD

    nfs, smb = exporter_for(settings.nfs), settings.smb
    found: list[Privileged] = []
    if isinstance(nfs, KernelNfsExporter):
        found.append(Privileged("NFS", ("exportfs", "-ra")))
    elif isinstance(nfs, GaneshaExporter):
        pidfile = settings.nfs.ganesha_pidfile
        found.append(Privileged("NFS", ("pkill", "-HUP", "-F", pidfile)))
    else:  # macOS
        found += [
            Privileged("NFS", ("nfsd", "checkexports")),
            Privileged("NFS", ("nfsd", "update")),
        ]
    conf, account = smb.smb_conf, smb.account
    found += [
        Privileged("SMB", ("smbcontrol", "-s", conf, "smbd", "reload-config")),
        Privileged("SMB", ("smbcontrol", "-s", conf, "smbd", "close-share", "TAG"), SHARE_NAME),
        Privileged("SMB", ("pdbedit", "-s", conf, "-u", account)),
        Privileged("SMB", ("smbpasswd", "-c", conf, "-s", "-a", account)),
        Privileged("SMB", ("smbpasswd", "-c", conf, "-x", account)),
        Privileged("SMB", ("useradd", *USERADD, account)),
        Privileged("SMB", ("userdel", account)),
    ]
    for path, removable, protocol in config_files(settings):
        found += [replace(c, protocol=protocol) for c in file_commands(path, removable=removable)]
    return [c if c.protocol else replace(c, protocol=c.group.lower()) for c in found]


def preflight(settings: HostSettings, protocols: set[str]) -> None:
    """Before any change, when vmshare is not root: would ``sudo -n`` run every root command
    that shares over ``protocols`` need? A missing rule then refuses the whole run up front,
    instead of failing at its first root step and rolling back. ``sudo -l`` runs nothing."""
    if not protocols or not hasattr(os, "geteuid") or os.geteuid() == 0:
        return
    wanted = [c for c in commands(settings) if c.protocol in protocols]
    refused = []
    for command in wanted:
        argv = [*command.argv[:-1], SAMPLE_SHARE] if command.pattern else list(command.argv)
        checked = hostexec.run(
            ["sudo", "-n", "-l", "--", program(argv[0]), *argv[1:]],
            check=False,
            timeout=hostexec.QUICK,
        )
        if checked.returncode != 0:
            refused.append(" ".join(argv))
    if refused:
        raise PrivilegeRefused(
            f"sudo would refuse {len(refused)} of the {len(wanted)} root commands these "
            f"{'/'.join(sorted(protocols)).upper()} shares need (first: `{refused[0]}`); "
            "nothing was changed",
            hint=SUDOERS_HINT,
        )


# ----------------------------------------------------------------------------- sudoers

_SUDOERS_SPECIAL = re.compile(r"([\\,:=*?\[\]!#])")
_REGEX_SPECIAL = re.compile(r"([.$*+?(){}|\[\]#])")
_SUDOERS_REGEX_SPECIAL = re.compile(r"([\\,:=#$])")


def _word(text: str) -> str:
    """One argument of a sudoers command: its special and wildcard characters escaped."""
    if not text or re.search(r"[\s\x00-\x1f\x7f\"']", text):
        raise UsageError(
            f"a sudoers rule cannot name {text!r}: it holds a space, a quote or a control "
            "character",
            hint="use paths without them in host.toml ([nfs], [smb]) to run vmshare via sudo",
        )
    return _SUDOERS_SPECIAL.sub(r"\\\1", text)


def _regex_word(text: str) -> str:
    """A literal inside a sudoers regular expression: each metacharacter as a one-character
    class (no backslash, which sudoers itself would read first)."""
    if re.search(r"[\^\\\s\x00-\x1f\x7f\"']", text):
        raise UsageError(
            f"a sudoers rule cannot match {text!r} exactly: it holds ^, \\, a quote, a space "
            "or a control character",
            hint="use paths without them in host.toml ([smb] smb_conf)",
        )
    return _REGEX_SPECIAL.sub(lambda m: f"[{m.group(1)}]", text)


def sudoers_command(command: Privileged) -> str:
    path = _word(program(command.argv[0]))
    args = command.argv[1:]
    if command.pattern is None:
        return " ".join([path, *(_word(a) for a in args)])
    literal = " ".join(_regex_word(a) for a in args[:-1])
    # sudoers reads a backslash escape first, even inside a regular expression
    literal = _SUDOERS_REGEX_SPECIAL.sub(r"\\\1", literal)
    return f"{path} ^{literal} {command.pattern}$"


def sudoers(settings: HostSettings, user: str) -> str:
    """The sudoers lines that let ``user`` run vmshare without a root shell: one Cmnd_Alias per
    group of ``commands(settings)``, NOPASSWD (vmshare runs sudo with -n, never prompting)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", user):
        raise UsageError(f"not a user name sudoers can hold: {user!r}", hint="pass --user NAME")
    groups: dict[str, list[str]] = {}
    for command in commands(settings):
        line = sudoers_command(command)
        if line not in groups.setdefault(command.group, []):
            groups[command.group].append(line)
    lines = [
        "# vmshare: the host commands it runs as root (printed by `vmshare doctor --sudoers`).",
        "# Check and install: visudo -cf FILE && install -m 0440 FILE /etc/sudoers.d/vmshare",
        "# Writing a file server's config is as strong as root (smb.conf can name commands",
        "# that smbd runs as root): give these lines only to users you would trust with root.",
    ]
    for group, items in groups.items():
        lines.append(f"Cmnd_Alias VMSHARE_{group} = " + ", \\\n    ".join(items))
    aliases = ", ".join(f"VMSHARE_{g}" for g in groups)
    lines.append(f"{user} ALL=(root) NOPASSWD: {aliases}")
    return "\n".join(lines) + "\n"


def invoking_user() -> str:
    """Who the rule is for: the user behind sudo, else this process's user."""
    import getpass

    return os.environ.get("SUDO_USER") or getpass.getuser()
