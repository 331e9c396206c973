"""Linux guest side of a share: mount point, mount, probe, and the fstab entry.

Untrusted strings (paths) never become shell text: scripts are constants and receive values as
positional parameters (``"$1"``), which the shell never parses.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
import secrets
import time
from collections.abc import Callable, Sequence

from vmshare.errors import GuestError, UsageError
from vmshare.facts import GuestFacts, GuestMount, ancestors
from vmshare.formats import fstab
from vmshare.guest.channel import GuestChannel, GuestResult
from vmshare.secrets import SecretStore

MOUNT_RETRY_SECONDS = 10.0  # s: retrying a refused mount (device not probed yet, server reloading)
MOUNT_RETRY_INTERVAL = 0.1  # s: between those tries (a hot-plugged device is probed in ~0.5 s)
_SEPARATOR = "@@vmshare-section@@"
_INSPECT = (
    'cat /proc/self/mounts; echo "$0"; cat /etc/fstab 2>/dev/null; echo "$0"; '
    'for p in "$@"; do [ -d "$p" ] && printf "%s\\n" "$p"; done; echo "$0"; '
    'cat /proc/net/route 2>/dev/null; echo "$0"; '
    # the HGFS clients: the FUSE one, and the old kernel module's mount program
    "command -v vmhgfs-fuse >/dev/null 2>&1 && echo vmhgfs-fuse; "
    "{ command -v mount.vmhgfs || [ -x /sbin/mount.vmhgfs ]; } >/dev/null 2>&1 && echo vmhgfs; "
    "true"
)
_READ_FSTAB = "cat /etc/fstab 2>/dev/null || true"
# Replace /etc/fstab atomically, only if it is still the file we read ($1 = its sha256). A
# symlinked fstab is followed to its final target, which is replaced in its own folder (mode and
# owner kept, backup next to it): the link stays a link. A dangling link gets its target.
_WRITE_FSTAB = """set -e
f=$(readlink -f /etc/fstab) || { echo "/etc/fstab: cannot resolve its symlinks" >&2; exit 1; }
cur=$( (cat "$f" 2>/dev/null || true) | sha256sum | cut -d' ' -f1)
[ "$cur" = "$1" ] || { echo "/etc/fstab changed while vmshare was editing it" >&2; exit 75; }
tmp="$f.vmshare-tmp.$$"
trap 'rm -f "$tmp"' EXIT
if [ -f "$f" ]; then
    cp -p "$f" "$tmp"  # mode and owner of the file it replaces
    cp -p "$f" "$f.vmshare-bak"
else
    : > "$tmp"
    chmod 644 "$tmp"
fi
cat > "$tmp"
sync
mv -f "$tmp" "$f"
trap - EXIT
sync
"""
# Write stdin to $1 (its symlinks followed) with mode 0600 from the start (umask), atomically.
_WRITE_PRIVATE = """set -e
umask 077
mkdir -p "$(dirname "$1")"
f=$(readlink -f "$1") || { echo "$1: cannot resolve its symlinks" >&2; exit 1; }
cat > "$f.vmshare-tmp"
sync
mv -f "$f.vmshare-tmp" "$f"
sync
"""
# Remove the file $1; its folder too when that is vmshare's own ($2) and now empty.
_REMOVE_FILE = 'rm -f "$1" && { [ -z "$2" ] || rmdir "$2" 2>/dev/null || true; }'
# Remove each folder in turn while it is empty; print the first one that is not, and stop.
_RMDIR_EMPTY = (
    'for d in "$@"; do [ -d "$d" ] || continue; '
    'rmdir "$d" 2>/dev/null || { printf %s "$d"; exit 3; }; done'
)
_PROBE_WRITE = """set -e
f="$1/.vmshare-probe.$2"
printf '%s' "$2" > "$f"
got=$(cat "$f")
rm -f "$f"
[ "$got" = "$2" ]
"""
_PROBE_READ = 'ls -A "$1" > /dev/null'
# Mount unless the last mount over the target ($2) already has the source ($1), in one guest
# call: both come escaped as /proc/self/mounts writes them; the mount's own argv follows.
_MOUNT_UNLESS_MOUNTED = (
    "src=$1 dst=$2; shift 2; last=; "
    'while read -r s t _; do [ "$t" = "$dst" ] && last=$s; done < /proc/self/mounts; '
    '[ "$last" = "$src" ] && exit 0; exec "$@"'
)
# Unmount $2 if anything is mounted there ($1: the same path escaped as /proc/self/mounts has it).
_UMOUNT_IF_MOUNTED = (
    'm=; while read -r s t _; do [ "$t" = "$1" ] && m=1; done < /proc/self/mounts; '
    '[ -z "$m" ] || exec umount "$2"'
)
_FSTAB_CHANGED = 75  # _WRITE_FSTAB's exit code when /etc/fstab is not the text it was given


def mount_argv(source: str, target: str, fstype: str, options: list[str]) -> list[str]:
    """cifs and vmhgfs go straight to mount.cifs and mount.vmhgfs: some mount programs (busybox)
    hand them over only after their own attempt fails, and drop flag options such as ro on the
    way. A FUSE type ``fuse.PROGRAM`` is mounted by PROGRAM itself, as mount.fuse does it for an
    fstab line."""
    for value in (source, target):
        if not value or value.startswith("-"):
            # every mount program here would read it as an option, and not all take "--"
            raise UsageError(
                f"cannot mount {source!r} on {target!r}: a source or mount point may not be "
                "empty or start with '-'",
                hint="use an absolute guest path",
            )
    if fstype == "cifs":
        return ["mount.cifs", source, target, "-o", ",".join(options)]
    if fstype.startswith("fuse.") and len(fstype) > len("fuse."):
        return [fstype.removeprefix("fuse."), source, target, "-o", ",".join(options)]
    if fstype == "vmhgfs":  # the kernel module needs its mount program's mount data; ro kept
        return ["mount.vmhgfs", source, target, "-o", ",".join(options)]
    return ["mount", "-t", fstype, "-o", ",".join(options), source, target]


# mount.nfs retries a refused or timed-out connection for 2 minutes by default (retry=),
# past the guest command's deadline; vmshare's live mounts try once and retry themselves
# (MOUNT_RETRY_SECONDS). Only the live mount: fstab keeps the default for boot.
NFS_TYPES = ("nfs", "nfs4")
# a server the guest cannot reach: mount.nfs's words, and mount.cifs's errno (111 refused,
# 110 timed out, 113 and 101 no route)
_UNREACHABLE = (
    ("connection refused", re.compile(r"connection refused|error\(111\)", re.I)),
    ("connection timed out", re.compile(r"timed out|error\(110\)", re.I)),
    ("no route", re.compile(r"no route to host|network is unreachable|error\((113|101)\)", re.I)),
)
SERVERS = {"nfs": ("NFS", 2049), "nfs4": ("NFS", 2049), "cifs": ("SMB", 445)}


def live_mount_options(fstype: str, options: list[str]) -> list[str]:
    """The options of vmshare's own mount now: NFS tries once unless the user set retry=."""
    if fstype in NFS_TYPES and not any(o.startswith("retry=") for o in options):
        return [*options, "retry=0"]
    return options


def unreachable_server(error: str, source: str, fstype: str, options: list[str]) -> str | None:
    """What a mount error means when the guest could not reach the server at all ("connection
    refused at HOST:PORT: the NFS server is not answering"); None for any other error."""
    if fstype not in SERVERS:
        return None
    cause = next((name for name, pattern in _UNREACHABLE if pattern.search(error)), None)
    if cause is None:
        return None
    what, port = SERVERS[fstype]
    if fstype == "cifs":
        host = source.removeprefix("//").split("/", 1)[0]
    else:
        host = source.split(":/", 1)[0]
    for option in options:
        if option.startswith("port=") and option[5:].isdigit() and int(option[5:]):
            port = int(option[5:])
    return f"{cause} at {host}:{port}: the {what} server is not answering"


def default_gateway(route_table: str) -> str | None:
    """The IPv4 default gateway from /proc/net/route (little-endian hex fields)."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000" and fields[2] != "00000000":
            return str(ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1]))
    return None


class LinuxGuest:
    def __init__(self, channel: GuestChannel, vm: str, secrets: SecretStore | None = None) -> None:
        self.channel = channel
        self.vm = vm
        self.secrets = secrets
        # /etc/fstab as this guest last read or wrote it: an edit starts from it and saves a
        # read; the write is a compare-and-swap, so a stale copy only costs a re-read
        self._fstab: bytes | None = None

    def _run(self, argv: Sequence[str], what: str, input: bytes | None = None) -> GuestResult:
        result = self.channel.run(argv, input=input)
        if result.exit_code != 0:
            raise GuestError(
                f"{what} in VM {self.vm!r} failed: {result.error_line}",
                hint="see the guest's message; vmshare undid what it had done",
            )
        return result

    def _sh(self, script: str, *args: str, what: str, input: bytes | None = None) -> GuestResult:
        return self._run(["sh", "-c", script, "vmshare", *args], what, input)

    # ----------------------------------------------------------------- read-only probes

    def inspect(self, targets: Sequence[str]) -> GuestFacts:
        """Mounts, vmshare's fstab entries, the default route, and which of ``targets`` and
        their parent folders exist."""
        paths = list(dict.fromkeys(p for t in targets for p in (t, *ancestors(t))))
        result = self._run(["sh", "-c", _INSPECT, _SEPARATOR, *paths], "reading mounts")
        parts = result.stdout.decode("utf-8", "surrogateescape").split(_SEPARATOR + "\n")
        mounts_text, fstab_text, dirs_text, route_text, clients = [*parts, "", "", "", "", ""][:5]
        self._fstab = fstab_text.encode("utf-8", "surrogateescape") if len(parts) >= 5 else None
        mounts = {
            m.target: GuestMount(
                source=m.source, target=m.target, fstype=m.fstype, options=list(m.options)
            )
            for m in fstab.parse_table(mounts_text)
        }
        return GuestFacts(
            reachable=True,
            channel=self.channel.name,
            mounts=mounts,
            fstab_entries=fstab.block_entries(fstab_text),
            existing_dirs=[d for d in dirs_text.splitlines() if d],
            gateway=default_gateway(route_text),
            hgfs_clients=clients.split(),
        )

    def mounted(self, target: str) -> GuestMount | None:
        return self.inspect([]).mounts.get(target)

    # ------------------------------------------------------------------------ actions

    def mkdir(self, path: str) -> None:
        self._run(["mkdir", "-p", path], f"creating {path}")

    def rmdir_empty(self, path: str, parents: Sequence[str] = ()) -> str | None:
        """Remove ``path`` and then ``parents`` (the folders its mkdir -p made), each only
        while empty."""
        result = self.channel.run(["sh", "-c", _RMDIR_EMPTY, "vmshare", path, *parents])
        if result.exit_code == 3:
            left = result.stdout.decode("utf-8", "replace") or path
            return f"left {left} in the guest: it is not empty"
        if result.exit_code != 0:
            raise GuestError(f"removing {path} in the guest failed: {result.error_line}")
        return None

    def mount(
        self,
        source: str,
        target: str,
        fstype: str,
        options: list[str],
        fallbacks: list[tuple[str, list[str]]] | None = None,
    ) -> None:
        """Mount, trying ``fallbacks`` (fstype, options) in turn if the server refuses; a mount
        of ``source`` already there is kept (checked by the same guest call)."""
        guard = ["sh", "-c", _MOUNT_UNLESS_MOUNTED, "vmshare", *map(fstab.escape, (source, target))]
        tries = [(fstype, options), *(tuple(f) for f in fallbacks or [])]
        # A device hot-plugged a moment ago may not be probed by the guest yet (EINVAL for
        # about half a second under emulation), and a server may still be reloading its
        # exports: retry briefly before calling it a failure.
        deadline = time.monotonic() + MOUNT_RETRY_SECONDS
        while True:
            for kind, opts in tries:
                live = live_mount_options(str(kind), list(opts))
                argv = mount_argv(source, target, str(kind), live)
                result = self.channel.run([*guard, *argv])
                if result.exit_code == 0:
                    return
                cause = unreachable_server(result.error_line, source, str(kind), live)
                if cause:  # no other version helps: the server does not answer at all
                    break
            if time.monotonic() > deadline:
                bound = f"retried for {MOUNT_RETRY_SECONDS:g} s, the mount retry bound"
                if cause:
                    raise GuestError(
                        f"mounting {target} in VM {self.vm!r} failed: {cause} ({bound})",
                        hint=f"start the file server on the host (`vmshare doctor {self.vm}` "
                        "checks it from the guest) and run the command again",
                    )
                raise GuestError(
                    f"mounting {target} in VM {self.vm!r} failed ({bound}): {result.error_line}",
                    hint=f"check that the guest kernel supports {fstype}; vmshare undid its steps",
                )
            time.sleep(MOUNT_RETRY_INTERVAL)

    def unmount(self, target: str) -> None:
        script = ["sh", "-c", _UMOUNT_IF_MOUNTED, "vmshare", fstab.escape(target), target]
        result = self.channel.run(script)
        if result.exit_code != 0:
            raise GuestError(
                f"cannot unmount {target} in VM {self.vm!r}: {result.error_line}",
                hint="close programs using it in the guest (fuser -m), then run the command again",
            )

    def probe(self, target: str, writable: bool) -> None:
        if writable:
            self._sh(
                _PROBE_WRITE, target, secrets.token_hex(8), what=f"write/read probe of {target}"
            )
        else:
            self._sh(_PROBE_READ, target, what=f"read probe of {target}")

    def _edit_fstab(self, change: str, edit: Callable[[str], str]) -> None:
        cached, self._fstab = self._fstab, None
        while True:
            current = cached
            if current is None:
                current = self._sh(_READ_FSTAB, what="reading /etc/fstab").stdout
            text = current.decode("utf-8", "surrogateescape")
            new = edit(text)
            if new == text:
                self._fstab = current
                return
            digest = hashlib.sha256(current).hexdigest()
            data = new.encode("utf-8", "surrogateescape")
            result = self.channel.run(["sh", "-c", _WRITE_FSTAB, "vmshare", digest], input=data)
            if result.exit_code == _FSTAB_CHANGED and cached is not None:
                cached = None  # our copy was stale: read it again and redo the edit once
                continue
            if result.exit_code != 0:
                raise GuestError(
                    f"{change} in VM {self.vm!r} failed: {result.error_line}",
                    hint="see the guest's message; vmshare undid what it had done",
                )
            self._fstab = data
            return

    def fstab_add(
        self,
        entry_id: str,
        source: str,
        target: str,
        fstype: str,
        options: list[str],
        follow_mount: bool = False,
    ) -> None:
        """The fstab entry; with ``follow_mount``, of the type and version that really mounted."""
        current = self.mounted(target) if follow_mount else None
        if current is not None:
            fstype = current.fstype
            version = next((o for o in current.options if o.startswith("vers=")), None)
            if version:
                options = [version if o.startswith("vers=") else o for o in options]
        line = fstab.render_entry(fstab.MountEntry(source, target, fstype, tuple(options)))
        self._edit_fstab(
            f"adding {target} to /etc/fstab", lambda text: fstab.with_entry(text, entry_id, line)
        )

    def write_credentials(self, path: str, account: str, secret_name: str) -> None:
        """A 0600 credentials file for mount.cifs; the password travels on stdin only."""
        from vmshare.protocols.smb import credentials_text

        if self.secrets is None:
            raise GuestError("no secret store for guest credentials")
        data = credentials_text(account, self.secrets.get_or_create(secret_name))
        self._sh(_WRITE_PRIVATE, path, what=f"writing {path}", input=data)

    def remove_file(self, path: str) -> None:
        """Remove ``path``; the credentials folder goes with its last file."""
        from vmshare.protocols.smb import CREDENTIALS_DIR

        own_dir = CREDENTIALS_DIR if posixpath.dirname(path) == CREDENTIALS_DIR else ""
        self._sh(_REMOVE_FILE, path, own_dir, what=f"removing {path}")

    def fstab_remove(self, entry_id: str) -> None:
        self._edit_fstab(
            "removing a vmshare entry from /etc/fstab",
            lambda text: fstab.without_entry(text, entry_id),
        )
