"""VMware Workstation/Fusion ``.vmx`` files: parse, edit in place, render byte for byte.

The rules implemented here are VMware's own, read in open-vm-tools (``lib/dict/dictll.c``,
``DictLL_UnmarshalLine``/``DictLL_MarshalLine``, and ``lib/misc/escape.c``):

- A line is ``<ws> name <ws> = <ws> "quoted value" <ws> #comment`` (or an unquoted value
  without blanks, ``#`` or a leading ``"``; or nothing after ``=``: the empty string). A name
  holds no blank, ``=``, ``#`` or NUL. Any other line (comment, blank, malformed) is kept as it
  is and means nothing.
  VMware writes exactly ``name = "value"``. Names match case-insensitively, as VMware's Dictionary
  looks them up; when a name appears twice the last line wins.
- Escaping works on the *encoded bytes* of a value: VMware writes ``|`` plus two upper-case hex
  digits for every byte below 0x20 except tab, for ``"`` (0x22), ``|`` (0x7C) and 0x7F; bytes from
  0x80 up are written as they are. Reading turns ``|`` plus two hex digits (either case) back into
  that byte and leaves any other ``|`` alone. So a value can never end its quotes, its line or its
  key: ``"`` and newline become ``|22`` and ``|0A``, and a literal ``|0A`` becomes ``|7C0A``.
  Because the rule is on bytes, a Shift_JIS trail byte 0x7C is escaped too, as VMware does.
- The values are C strings inside VMware, so a value with NUL is refused rather than cut short.
- A leading UTF-8 byte order mark means UTF-8. Otherwise the ``.encoding`` key names the encoding
  ("UTF-8", "windows-1252", "Shift_JIS"... looked up with Python's codecs). Old files without it
  were written in the host's locale, which vmshare cannot know: their values are read as UTF-8
  (strictly) and only ASCII values are written into them. An encoding that does not keep ASCII
  bytes as they are (UTF-16...) is refused: VMware never writes one.
- A value the file's encoding cannot hold is refused when it is set (a clear error, no mojibake);
  lines that are not changed are never decoded or re-encoded, so ``render()`` gives back every
  other byte (line endings, ``\\r\\n`` included, spacing, comments, duplicates) as it was read.

Shared folders are the ``sharedFolderN.*`` keys and ``sharedFolder.maxNum`` that Workstation and
Fusion write when a folder is added in their settings. ``edit_vmx`` is the one way vmshare changes a
.vmx on disk: locked, atomic, with the previous version kept, and never while VMware holds the VM.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vmshare.errors import NotFoundError, UsageError, VmshareError
from vmshare.fsutil import atomic_write, locked_folder, real_file

KEY = re.compile(r"[A-Za-z0-9_.:-]+")
ENCODING_KEY = ".encoding"
UTF8_BOM = b"\xef\xbb\xbf"

# open-vm-tools DictLL_UnmarshalLine, as one expression over the bytes of a line (no newline).
_LINE = re.compile(
    rb"[ \t]*(?P<name>[^\x00 \t#=]+)[ \t]*=[ \t]*"
    rb'(?P<value>"(?P<quoted>[^"\x00]*)"|(?P<bare>(?:[^\x00 \t#"][^\x00 \t#]*)?))'
    rb"[ \t]*(?:#.*)?",
    re.DOTALL,
)
# open-vm-tools DictLL_MarshalLine's table: control bytes but tab, '"', '|', DEL.
_TO_ESCAPE = frozenset([*range(0x09), *range(0x0A, 0x20), 0x22, 0x7C, 0x7F])
_ESCAPED = re.compile(rb"\|([0-9A-Fa-f]{2})")
_PROBE = '.encoding = "x|#=" \t\r\n'


class VmxError(VmshareError):
    """A .vmx file vmshare cannot read or change safely."""


class VmxLocked(VmxError):
    """VMware holds the VM (its ``.vmx.lck`` folder exists)."""


def escape(raw: bytes) -> bytes:
    """Escape encoded value bytes the way VMware writes them (``|XX``)."""
    return b"".join(b"|%02X" % b if b in _TO_ESCAPE else bytes([b]) for b in raw)


def unescape(raw: bytes) -> bytes:
    """Undo VMware's ``|XX`` escaping; a ``|`` not followed by two hex digits stays."""
    return _ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def check_key(key: str) -> str:
    """``key`` if it is a plain .vmx key (``[A-Za-z0-9_.:-]+``); keys are code, never user text."""
    if not KEY.fullmatch(key):
        raise ValueError(f"not a .vmx key: {key!r}")
    return key


def _codec(name: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise VmxError(
            f"the .vmx file declares an encoding vmshare does not know: {name!r}",
            hint="open the VM once in Workstation/Fusion (it rewrites the file), then retry",
        ) from None
    try:
        ascii_safe = _PROBE.encode(codec) == _PROBE.encode("ascii")
    except (UnicodeError, LookupError):
        ascii_safe = False
    if not ascii_safe:
        raise VmxError(f"the .vmx file declares an encoding VMware does not write: {name!r}")
    return codec


@dataclass
class _Line:
    raw: bytes  # the line without its end
    end: bytes  # b"\n", b"\r\n" or b"" (last line without one)
    name: bytes | None = None  # as written in the file
    value_span: tuple[int, int] | None = None  # where the value (with its quotes) is in raw
    escaped: bytes = b""  # the value's bytes, still escaped

    @property
    def folded(self) -> bytes | None:
        return None if self.name is None else self.name.lower()


def _parse_line(raw: bytes, end: bytes) -> _Line:
    match = _LINE.fullmatch(raw)
    if not match:
        return _Line(raw, end)
    escaped = match.group("quoted") if match.group("quoted") is not None else match["bare"]
    return _Line(raw, end, match["name"], match.span("value"), escaped)


class VmxFile:
    """The lines of a .vmx file; every line that is not changed stays byte for byte."""

    def __init__(self, lines: list[_Line], bom: bool) -> None:
        self._lines = lines
        self._bom = bom
        self.encoding: str | None = "utf-8" if bom else None
        if not bom:
            declared = self._find(ENCODING_KEY)
            if declared is not None:
                name = unescape(declared.escaped).decode("ascii", "replace")
                self.encoding = _codec(name)

    # -- reading
    def _find(self, key: str) -> _Line | None:
        folded = check_key(key).encode("ascii").lower()
        found = [line for line in self._lines if line.folded == folded]
        return found[-1] if found else None

    def get(self, key: str) -> str | None:
        """The value of ``key`` (unescaped, decoded), the last one if it appears twice."""
        line = self._find(key)
        if line is None:
            return None
        raw = unescape(line.escaped)
        try:
            return raw.decode(self.encoding or "utf-8")
        except UnicodeDecodeError:
            raise VmxError(
                f"the value of {key} in the .vmx file is not valid "
                f"{self.encoding or 'UTF-8 and the file declares no .encoding'}",
                hint="open the VM once in Workstation/Fusion (it rewrites the file), then retry",
            ) from None

    def keys(self, prefix: str = "") -> list[str]:
        """The distinct keys starting with ``prefix`` (any case), in file order, as written."""
        want = prefix.lower().encode("ascii", "replace")
        seen: dict[bytes, str] = {}
        for line in self._lines:
            if line.name is not None and line.name.lower().startswith(want):
                seen.setdefault(line.name.lower(), line.name.decode("ascii", "backslashreplace"))
        return list(seen.values())

    def __contains__(self, key: str) -> bool:
        return self._find(key) is not None

    # -- changing
    def _encode(self, key: str, value: str) -> bytes:
        if "\x00" in value:
            raise UsageError(
                f"the value for {key} contains a NUL character",
                hint="VMware cannot store NUL in a .vmx value; remove it",
            )
        codec = self.encoding or "ascii"
        try:
            return escape(value.encode(codec))
        except UnicodeEncodeError as exc:
            where = (
                f"this .vmx file's encoding ({codec})"
                if self.encoding
                else "a .vmx file without .encoding (only ASCII is safe there)"
            )
            raise UsageError(
                f"the value for {key} has a character ({value[exc.start : exc.end]!r}) "
                f"that cannot be written in {where}",
                hint="use a name or path without that character, or save the VM in a recent "
                "Workstation/Fusion (it writes UTF-8)",
            ) from None

    def _line_end(self) -> bytes:
        ends = [line.end for line in self._lines if line.end]
        return ends[0] if ends else b"\n"

    def set(self, key: str, value: str) -> None:
        """Set ``key``: its (last) line is changed in place, or a line is added at the end."""
        if check_key(key).lower() == ENCODING_KEY:
            raise ValueError("vmshare does not change a .vmx file's encoding")
        escaped = self._encode(key, value)
        line = self._find(key)
        if line is not None:
            assert line.value_span is not None
            start, stop = line.value_span
            raw = line.raw[:start] + b'"' + escaped + b'"' + line.raw[stop:]
            line.raw, line.escaped = raw, escaped
            line.value_span = (start, start + len(escaped) + 2)
            return
        end = self._line_end()
        if self._lines and not self._lines[-1].end:
            self._lines[-1].end = end
        raw = key.encode("ascii") + b' = "' + escaped + b'"'
        self._lines.append(_parse_line(raw, end))

    def remove(self, key: str) -> bool:
        """Take out every line of ``key``; False if there was none."""
        if check_key(key).lower() == ENCODING_KEY:
            raise ValueError("vmshare does not change a .vmx file's encoding")
        folded = key.encode("ascii").lower()
        kept = [line for line in self._lines if line.folded != folded]
        removed = len(kept) != len(self._lines)
        self._lines = kept
        return removed

    def render(self) -> bytes:
        return (UTF8_BOM if self._bom else b"") + b"".join(ln.raw + ln.end for ln in self._lines)


def _lines_lf(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Lines split at ``\\n`` only, as VMware splits them (a lone ``\\r`` is not an end)."""
    start = 0
    while start < len(data):
        stop = data.find(b"\n", start)
        if stop < 0:
            yield data[start:], b""
            return
        raw = data[start:stop]
        if raw.endswith(b"\r"):
            yield raw[:-1], b"\r\n"
        else:
            yield raw, b"\n"
        start = stop + 1


def parse(data: bytes) -> VmxFile:
    """Parse a .vmx file's bytes; ``render()`` gives back exactly ``data`` until a change."""
    bom = data.startswith(UTF8_BOM)
    body = data[len(UTF8_BOM) :] if bom else data
    return VmxFile([_parse_line(raw, end) for raw, end in _lines_lf(body)], bom)


# -- shared folders


@dataclass(frozen=True)
class SharedFolder:
    index: int
    present: bool
    enabled: bool
    read_access: bool
    write_access: bool
    host_path: str | None
    guest_name: str | None
    expiration: str | None

    @property
    def readonly(self) -> bool:
        return not self.write_access


_FOLDER_KEY = re.compile(r"sharedfolder(\d+)\.", re.IGNORECASE)
SHARE_NAME = re.compile(r"vmshare-[a-z0-9-]{1,60}")  # what share_name() gives


def _true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("true", "yes", "on", "1")


def _folder_indices(vmx: VmxFile) -> set[int]:
    found = set()
    for key in vmx.keys("sharedFolder"):
        match = _FOLDER_KEY.match(key)
        if match:
            found.add(int(match.group(1)))
    return found


MAX_NUM = "sharedFolder.maxNum"


def max_num(vmx: VmxFile) -> int:
    value = vmx.get(MAX_NUM)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def shared_folders(vmx: VmxFile) -> dict[int, SharedFolder]:
    """The shared folders the file describes, by index (``sharedFolderN``)."""
    folders = {}
    for index in sorted(_folder_indices(vmx)):
        p = f"sharedFolder{index}."
        folders[index] = SharedFolder(
            index=index,
            present=_true(vmx.get(p + "present")),
            enabled=_true(vmx.get(p + "enabled")),
            read_access=_true(vmx.get(p + "readAccess")),
            write_access=_true(vmx.get(p + "writeAccess")),
            host_path=vmx.get(p + "hostPath"),
            guest_name=vmx.get(p + "guestName"),
            expiration=vmx.get(p + "expiration"),
        )
    return folders


def share_name(guest_path: str) -> str:
    """The HGFS share name for the share mounted at ``guest_path``: ``vmshare-<tail>-<hash>``.

    The name travels in ``.host:/<name>`` mount sources, /mnt/hgfs paths, vmrun argv and the .vmx,
    so it holds only ``[a-z0-9-]``: the readable part is the path's last component with anything
    else turned into ``-`` (cut to 24 characters), and 10 hex digits of the SHA-256 of the whole
    path keep two paths apart (``/a/src`` and ``/b/src``) and make the name deterministic.
    """
    digest = hashlib.sha256(guest_path.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    tail = guest_path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()
    readable = re.sub(r"[^a-z0-9]+", "-", tail).strip("-")[:24].strip("-")
    return "-".join(part for part in ("vmshare", readable, digest) if part)


def _check_share_name(guest_name: str) -> None:
    if not SHARE_NAME.fullmatch(guest_name):
        # vmshare adds and removes only folders it named: never one the user made
        raise ValueError(f"not a share name from share_name(): {guest_name!r}")


def _index_of(vmx: VmxFile, guest_name: str) -> int | None:
    for index, folder in shared_folders(vmx).items():
        if folder.guest_name == guest_name:
            return index
    return None


def with_shared_folder(vmx: VmxFile, guest_name: str, host_path: str, readonly: bool) -> int:
    """Describe the folder ``guest_name`` -> ``host_path`` in ``vmx``; its index.

    A folder of that name is updated where it is; a new one takes the first free index. Shared
    folders are enabled (``isolation.tools.hgfs.disable``) only if they were disabled; nothing else
    is written.
    """
    _check_share_name(guest_name)
    index = _index_of(vmx, guest_name)
    if index is None:
        used = _folder_indices(vmx)
        index = next(i for i in range(len(used) + 1) if i not in used)
    p = f"sharedFolder{index}."
    vmx.set(p + "present", "TRUE")
    vmx.set(p + "enabled", "TRUE")
    vmx.set(p + "readAccess", "TRUE")
    vmx.set(p + "writeAccess", "FALSE" if readonly else "TRUE")
    vmx.set(p + "hostPath", host_path)
    vmx.set(p + "guestName", guest_name)
    vmx.set(p + "expiration", "never")
    if max_num(vmx) < index + 1:
        vmx.set("sharedFolder.maxNum", str(index + 1))
    if _true(vmx.get("isolation.tools.hgfs.disable")):
        vmx.set("isolation.tools.hgfs.disable", "FALSE")
    return index


def without_shared_folder(vmx: VmxFile, guest_name: str) -> int | None:
    """Take out every ``sharedFolderN.*`` key of the folder ``guest_name``; its index, or None.

    ``sharedFolder.maxNum`` and every other key stay as they are.
    """
    _check_share_name(guest_name)
    index = _index_of(vmx, guest_name)
    if index is None:
        return None
    for key in vmx.keys(f"sharedFolder{index}."):
        vmx.remove(key)
    return index


# -- the file on disk


def lock_folder(path: Path) -> Path:
    """VMware's lock next to the .vmx: ``<name>.vmx.lck`` exists while the VM is open or running."""
    return path.with_name(path.name + ".lck")


def _refuse_if_locked(path: Path) -> None:
    if lock_folder(path).exists():
        raise VmxLocked(
            f"{path.name} is in use by VMware ({lock_folder(path).name} exists)",
            hint="shut the VM down and close it in Workstation/Fusion, then retry "
            "(or add the share while it runs, through vmrun)",
        )


@contextlib.contextmanager
def _edit_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl  # noqa: F401  (only to know whether locked_folder can work here)
    except ImportError:  # Windows: no flock; the VMware lock check and the re-read still hold
        yield
        return
    with locked_folder(path):
        yield


def edit_vmx(path: Path, change: Callable[[VmxFile], object], *, lock_check: bool = True) -> bool:
    """Apply ``change`` to the .vmx at ``path`` and write it back; False if nothing changed.

    Refused while VMware's lock folder exists (``lock_check``). Written atomically with the
    previous version kept as ``<name>.vmshare-bak``; on refusal or any error the file is unchanged.
    """
    try:
        target = real_file(Path(path))
        with _edit_lock(target):
            if lock_check:
                _refuse_if_locked(target)
            old = target.read_bytes()
            vmx = parse(old)
            change(vmx)
            new = vmx.render()
            if new == old:
                return False
            if lock_check:
                _refuse_if_locked(target)  # VMware may have opened the VM meanwhile
            if target.read_bytes() != old:
                raise VmxError(
                    f"{target.name} changed while vmshare was editing it",
                    hint="retry once nothing else is changing the VM's settings",
                )
            atomic_write(target, new, keep_backup=True)
    except FileNotFoundError:
        raise NotFoundError(
            f"no .vmx file at {path}", hint="check the VM's vmx path in host.toml"
        ) from None
    except PermissionError as exc:
        raise VmxError(
            f"permission denied: {exc.filename or path}",
            hint="run vmshare as the user who owns the VM's files",
        ) from None
    return True
