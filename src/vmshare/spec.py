"""What the user asked for: Spec models and their loaders. Validation only; nothing is touched.

A spec file (``vmshare.toml``)::

    version = 1

    [vm.devvm]
    backend = "libvirt"
    connection = "qemu:///system"

    [[share]]
    source = "~/src"          # ~ and ${ENV} are expanded; relative paths start at this file
    vm = "devvm"
    target = "/mnt/src"
    protocol = "auto"
    readonly = false

The ``SRC VM:DST`` shorthand of ``vmshare add`` resolves to the same models.
"""

from __future__ import annotations

import ntpath
import os
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from vmshare.backends.hyperv.settings import HypervVm
from vmshare.backends.libvirt.settings import LibvirtVm
from vmshare.backends.settings import GuestAccess as GuestAccess  # re-exported
from vmshare.backends.virtualbox.settings import VirtualboxVm
from vmshare.backends.vmware_desktop.settings import VmwareDesktopVm
from vmshare.backends.vsphere.settings import VsphereVm
from vmshare.errors import SpecError, VmshareError, unknown
from vmshare.values import expand, no_control

BackendName = Literal["libvirt", "vsphere", "vmware-desktop", "virtualbox", "hyperv"]
# another name a spec or --backend may use: "vmware" is vmware-desktop with a vmx setting,
# else vsphere
BACKEND_ALIASES = ("vmware",)
ProtocolName = Literal["auto", "native", "virtiofs", "9p", "vboxsf", "hgfs", "nfs", "smb"]
SPEC_VERSION: Literal[1] = 1

_no_control = no_control
_MOUNT_OPTION = re.compile(r"^[A-Za-z0-9_.=:/+@-]+$")


# A Windows host folder (C:\data, C:/data) or guest target (X:, C:\mnt\src).
WINDOWS_PATH = re.compile(r"[A-Za-z]:[\\/].*", re.DOTALL)
WINDOWS_TARGET = re.compile(r"[A-Za-z]:(?:[\\/].*)?", re.DOTALL)


def is_windows_path(value: str) -> bool:
    """Whether ``value`` is an absolute Windows path (drive letter, then a separator)."""
    return bool(WINDOWS_PATH.fullmatch(value))


# what no Windows file name may hold (past the drive's colon), control characters aside
WINDOWS_FORBIDDEN = re.compile(r'["*?<>|:]')


def windows_name_ok(value: str, what: str) -> str:
    """``value`` (a Windows path), refused when Windows could not name such a file."""
    bad = sorted(set(WINDOWS_FORBIDDEN.findall(ntpath.splitdrive(value)[1])))
    if bad:
        raise ValueError(
            f"{what} {value!r} holds {' '.join(bad)}, which no Windows file name may; rename it"
        )
    return value


def is_windows_target(value: str) -> bool:
    """Whether a guest path is a Windows one (a drive, or a folder on one)."""
    return bool(WINDOWS_TARGET.fullmatch(value))


def mount_options(value: list[str]) -> list[str]:
    """Mount options, one per item (``a,b`` split); each must fit in an fstab options field."""
    options: list[str] = []
    for item in value:
        for option in item.split(","):
            if not option:
                continue
            if not _MOUNT_OPTION.fullmatch(option):
                raise ValueError(
                    f"mount option {option!r} has characters fstab cannot hold "
                    "(use letters, digits and _ . = : / + @ -)"
                )
            options.append(option)
    return options


def normal_guest_path(value: str) -> str:
    """A guest path in the one form used as a key and in /proc/mounts: no '//' (POSIX keeps a
    leading pair, Linux does not), no '.' parts, no trailing '/'."""
    path = PurePosixPath(re.sub("/{2,}", "/", value))
    if ".." in path.parts:
        raise ValueError("guest path may not contain '..'")
    if str(path) == "/":
        raise ValueError("refusing to mount over the guest's root directory")
    return str(path)


class Owner(BaseModel):
    model_config = ConfigDict(frozen=True)
    uid: int = Field(ge=0, le=2**32 - 2)
    gid: int = Field(ge=0, le=2**32 - 2)

    @classmethod
    def parse(cls, text: str) -> Owner:
        match = re.fullmatch(r"(\d+):(\d+)", text.strip())
        if not match:
            raise ValueError(f"owner must be UID:GID in numbers, got {text!r}")
        return cls(uid=int(match.group(1)), gid=int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid}"


def _backend_of(data: Any) -> Any:
    """A ``[vm.NAME]`` table's backend: libvirt when it names none (vmware-desktop when it has a
    ``vmx`` setting: only Workstation/Fusion VMs have one); the ``vmware`` alias becomes
    vmware-desktop when the table has a ``vmx`` setting, else vsphere."""
    if isinstance(data, dict):
        backend = data.get("backend", "vmware-desktop" if "vmx" in data else "libvirt")
        if backend == "vmware":
            backend = "vmware-desktop" if "vmx" in data else "vsphere"
        data = {**data, "backend": backend}
    return data


# A VM's settings: one model per backend, each owned by its backend's folder.
VmSpec = Annotated[
    Union[LibvirtVm, VsphereVm, VmwareDesktopVm, VirtualboxVm, HypervVm],  # noqa: UP007
    Field(discriminator="backend"),
    BeforeValidator(_backend_of),
]
_VM_SPEC: TypeAdapter[VmSpec] = TypeAdapter(VmSpec)


def vm_settings(name: str, backend: str = "libvirt", **fields: Any) -> VmSpec:
    """A VM's settings from plain values (the defaults for a VM no spec describes)."""
    return _VM_SPEC.validate_python({**fields, "name": name, "backend": backend})


class ShareSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Path
    vm: str
    target: str
    name: str | None = None
    protocol: ProtocolName = "auto"
    readonly: bool = False
    owner: Owner | None = None
    mount_options: list[str] = []
    persist: bool = True
    create: bool = False

    @field_validator("owner", mode="before")
    @classmethod
    def _owner(cls, value: Any) -> Any:
        return Owner.parse(value) if isinstance(value, str) else value

    @field_validator("source")
    @classmethod
    def _source(cls, value: Path) -> Path:
        _no_control(str(value), "source path")
        if is_windows_path(str(value)):  # a folder of a Windows host (Hyper-V)
            return Path(ntpath.normpath(windows_name_ok(str(value), "source path")))
        if not value.is_absolute():
            raise ValueError("source must be an absolute path once resolved")
        return Path(os.path.normpath(value))

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        _no_control(value, "guest path")
        if WINDOWS_TARGET.fullmatch(value):  # Windows guests only: Spec checks the VM's os
            from vmshare.guest.windows import windows_path

            try:
                return windows_path(value)
            except VmshareError as exc:
                raise ValueError(exc.message) from None
        if not value.startswith("/"):
            raise ValueError(f"guest path must be absolute (start with '/'), got {value!r}")
        return normal_guest_path(value)

    @field_validator("mount_options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        return mount_options(value)

    @field_validator("name")
    @classmethod
    def _share_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", value):
            raise ValueError("share name: letters, digits, '_', '.', '-' (at most 63)")
        return value

    @property
    def key(self) -> str:
        """The identity of a share: one mount point in one VM."""
        return f"{self.vm}:{self.target}"

    @property
    def label(self) -> str:
        return self.name or self.key


class NfsHost(BaseModel):
    """The host's NFS server."""

    model_config = ConfigDict(extra="forbid")
    exporter: Literal["auto", "kernel", "ganesha", "macos"] = "auto"
    port: int | None = Field(default=None, ge=1, le=65535)  # guest mounts with port= when set
    exports_file: str | None = None  # default per exporter
    ganesha_config: str = "/etc/ganesha/ganesha.conf"  # must include exports_file (vmshare adds it)
    ganesha_pidfile: str = "/run/ganesha/ganesha.pid"
    pseudo_root: str = "/vmshare"  # ganesha: NFSv4 pseudo path prefix of vmshare's exports
    # actimeo=1 kept by measurement (benchmarks/defaults.py, docs/performance.md): it costs the warm
    # tree walk (file attributes expire after 1 s), and only caching file attributes 3-60 s
    # (kernel defaults) wins it back, which a stat-based build (make) would then see late.
    mount_options: list[str] = ["hard", "proto=tcp", "rsize=1048576", "wsize=1048576", "actimeo=1"]

    @field_validator("mount_options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        return mount_options(value)


class SmbHost(BaseModel):
    """The host's SMB server."""

    model_config = ConfigDict(extra="forbid")
    exporter: Literal["auto", "samba", "windows"] = "auto"
    port: int | None = Field(default=None, ge=1, le=65535)
    smb_conf: str = "/etc/samba/smb.conf"
    include_file: str = "/etc/samba/vmshare.conf"
    account: str = Field(default="vmshare", pattern=r"^[a-z_][a-z0-9_-]{0,30}$")
    encrypt: bool = True
    # cache=loose: without leases, Linux 6.1's strict mode reads uncached, and a spliced read
    # (cat into a pipe) of such a file came back padded with NULs; loose reads through the page
    # cache and revalidates every actimeo seconds (docs/semantics.md). acdirmax=30 measured no
    # faster but for a warm walk, and would hide new host files for 30 s (docs/performance.md).
    mount_options: list[str] = ["vers=3.1.1", "mfsymlinks", "cache=loose", "actimeo=1"]

    @field_validator("mount_options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        return mount_options(value)


def _named_vm_tables(data: Any) -> Any:
    """``[vm.NAME]`` tables take their ``name`` from the table's key."""
    if isinstance(data, dict) and isinstance(data.get("vm"), dict):
        data = dict(data)
        data["vm"] = {
            key: ({"name": key, **value} if isinstance(value, dict) else value)
            for key, value in data["vm"].items()
        }
    return data


class HostSettings(BaseModel):
    """Machine-level settings: host.toml, or a [host] table in a spec file. host.toml's
    ``[vm.NAME]`` tables describe the VMs that ``vmshare add VM:DST`` names (a vSphere VM's
    server and user, say), as a spec file's do for its shares."""

    model_config = ConfigDict(extra="forbid")
    nfs: NfsHost = NfsHost()
    smb: SmbHost = SmbHost()
    vm: dict[str, VmSpec] = {}

    @model_validator(mode="before")
    @classmethod
    def _vm_names(cls, data: Any) -> Any:
        return _named_vm_tables(data)


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = SPEC_VERSION
    host: HostSettings | None = None
    vm: dict[str, VmSpec] = {}
    share: list[ShareSpec] = []

    @model_validator(mode="before")
    @classmethod
    def _vm_names(cls, data: Any) -> Any:
        return _named_vm_tables(data)

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        seen: dict[str, int] = {}
        names: set[str] = set()
        for index, share in enumerate(self.share):
            if share.key in seen:
                raise ValueError(
                    f"share[{index}] mounts {share.key} again (already share[{seen[share.key]}])"
                )
            seen[share.key] = index
            if is_windows_target(share.target) and self.vm_for(share.vm).guest.os != "windows":
                raise ValueError(
                    f"share[{index}] target {share.target!r} is a Windows path: set "
                    f'[vm.{share.vm}.guest] os = "windows" for a Windows guest'
                )
            if share.name:
                if share.name in names:
                    raise ValueError(f"share name {share.name!r} is used twice")
                names.add(share.name)
        return self

    def vm_for(self, name: str) -> VmSpec:
        """The VM's settings; a VM the spec does not describe gets the defaults (libvirt)."""
        return self.vm.get(name) or LibvirtVm(name=name)


# ---------------------------------------------------------------------------------- loaders


def _leaves(line: str, section: re.Pattern[str] | None, *, any_header: bool) -> bool:
    """Whether ``line`` starts a table outside the section being searched."""
    if section is None or not line.lstrip().startswith("["):
        return False
    return any_header or not section.match(line)


def _locate_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a validation error's location in the TOML text."""
    lines = text.splitlines()
    start, section = 0, None
    if len(loc) >= 2 and loc[0] == "share" and isinstance(loc[1], int):
        headers = [i for i, line in enumerate(lines) if line.strip().startswith("[[share]]")]
        if loc[1] >= len(headers):
            return None
        start, section = headers[loc[1]], re.compile(r"^\s*\[\[share\]\]")
    elif len(loc) >= 2 and loc[0] == "vm":
        # the VM's table and its sub-tables ([vm.NAME.guest])
        section = re.compile(rf"^\s*\[vm\.\"?{re.escape(str(loc[1]))}\"?[.\]]")
        header = next((i for i, line in enumerate(lines) if section.match(line)), None)
        if header is None:
            return None
        start = header
    keys = [part for part in loc[2 if section else 0 :] if isinstance(part, str)]
    for key in dict.fromkeys(reversed(keys)):  # the innermost key first
        key_pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for i in range(start, len(lines)):
            if i > start and _leaves(lines[i], section, any_header=loc[0] == "share"):
                break
            if key_pattern.match(lines[i]):
                return i + 1
    return start + 1 if section is not None else None


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "spec"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation names (one, or the members of a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _walk(root: Any, loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, tuple[Any, ...]]:
    """The model whose field ``loc`` names (``share[0].x`` -> ShareSpec, ``vm.a.vsphere.x`` ->
    VsphereVm), and ``loc`` as the user wrote it: without the union's backend tag."""
    current, shown = root, []
    for index, part in enumerate(loc):
        if get_origin(current) in (dict, list):  # a table's key or a list's index
            current = get_args(current)[-1]
            shown.append(part)
            continue
        models = _models_in(current)
        if len(models) > 1:  # a union discriminated by backend: the part is the tag
            member = next((m for m in models if part in _tags(m)), None)
            if member is None:
                return None, (*shown, *loc[index:])
            current = member
            continue
        field = models[0].model_fields.get(part) if models else None
        if field is None:
            return None, (*shown, *loc[index:])
        current = field.annotation
        shown.append(part)
    models = _models_in(current)
    return (models[0] if len(models) == 1 else None), tuple(shown)


def _tags(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("backend")
    return get_args(field.annotation) if field is not None else ()


def _user_words(err: Any, loc: tuple[Any, ...], root: Any) -> str:
    """The message in the user's words: an unknown key or choice names the closest one."""
    kind, field = err.get("type"), str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        model, _ = _walk(root, loc[:-1])
        return unknown("key", field, model.model_fields if model else [])
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        return unknown(field.replace("_", " "), err.get("input"), choices)
    if kind == "missing":
        model, _ = _walk(root, loc[:-1])
        needed = [k for k, f in (model.model_fields if model else {}).items() if f.is_required()]
        listed = ", ".join(k for k in needed if k != "name")
        return f"missing key {field!r}" + (f" (this table needs: {listed})" if listed else "")
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        choices = [*re.findall(r"'([^']*)'", ctx.get("expected_tags", "")), *BACKEND_ALIASES]
        return unknown("backend", ctx.get("tag"), choices)
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def _spec_error(
    exc: ValidationError,
    origin: str,
    text: str | None = None,
    root: Any = None,
    hint: str | None = None,
) -> SpecError:
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "union_tag_invalid":
        loc = (*loc, "backend")
    message = _user_words(err, loc, root or Spec)
    _, shown = _walk(root or Spec, loc)
    where = _format_loc(shown)
    line = _locate_line(text, shown) if text is not None else None
    at = f"{origin}:{line}" if line else origin
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return SpecError(
        f"{at}: {where}: {message}{more}",
        hint=hint
        or f"fix it, then check with `vmshare plan -f {origin}`; `vmshare schema` lists all keys",
    )


def _resolve_sources(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Expand ``~``/``${ENV}`` in sources and anchor relative ones at ``base``."""
    shares = raw.get("share", [])
    if not isinstance(shares, list):
        return raw
    for index, share in enumerate(shares):
        if isinstance(share, dict) and isinstance(share.get("source"), str):
            try:
                expanded = expand(share["source"])
            except ValueError as exc:
                raise SpecError(
                    f"share[{index}].source: {exc}", hint="export the variable or edit the path"
                ) from None
            path = Path(expanded)
            absolute = path.is_absolute() or is_windows_path(expanded)
            share["source"] = str(path if absolute else base / path)
    return raw


def load_spec(path: Path) -> Spec:
    """Read and validate a spec file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file not found: {path}",
            hint=f"pass the right file with -f, or create {path}: `vmshare add` with "
            f"`--save {path}` records a share in it",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {path}: {exc}", hint="check the file") from None
    return parse_spec(text, origin=str(path), base=Path(path).resolve().parent)


def parse_spec(text: str, *, origin: str = "<spec>", base: Path | None = None) -> Spec:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{origin}: not valid TOML: {exc}", hint="fix the TOML syntax") from None
    raw = _resolve_sources(raw, base or Path.cwd())
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        raise _spec_error(exc, origin, text) from None


def parse_vm_target(text: str) -> tuple[str, str]:
    """Split ``VM:DST``; the VM name is everything before the first ':'."""
    vm, sep, target = text.partition(":")
    if not sep or not vm or not target:
        raise SpecError(f"expected VM:GUEST_PATH, got {text!r}", hint="for example: devvm:/mnt/src")
    return vm, target


def share_ref(text: str) -> str:
    """A share reference as the state keys it: ``VM:DST`` with DST normalized, or a name."""
    vm, sep, target = text.partition(":")
    if sep and vm and target.startswith("/"):
        try:
            return f"{vm}:{normal_guest_path(target)}"
        except ValueError:
            return text
    return text


def shorthand(
    source: str,
    vm_target: str,
    *,
    base: Path | None = None,
    backend: str | None = None,
    connection: str | None = None,
    known: dict[str, VmSpec] | None = None,
    **options: Any,
) -> tuple[ShareSpec, VmSpec]:
    """``SRC VM:DST`` plus CLI options -> the same models a spec file gives. The VM's settings
    are ``known[VM]`` (host.toml's ``[vm.NAME]`` tables) when there is one, else the defaults of
    ``backend`` (libvirt unless named)."""
    vm_name, target = parse_vm_target(vm_target)
    raw = _resolve_sources({"share": [{"source": source}]}, base or Path.cwd())
    fields = {key: value for key, value in options.items() if value is not None}
    vm_fields = {} if connection is None else {"connection": connection}
    try:
        share = ShareSpec.model_validate(
            {"source": raw["share"][0]["source"], "vm": vm_name, "target": target, **fields}
        )
    except ValidationError as exc:
        hint = "`vmshare add --help` lists the options and their values"
        raise _spec_error(exc, "arguments", root=ShareSpec, hint=hint) from None
    described = (known or {}).get(vm_name)
    if described is not None:
        return share, _described(described, backend, connection)
    backend = backend or "libvirt"
    if connection is not None and backend != "libvirt":
        raise SpecError(
            f"--connection is a libvirt setting; the {backend} backend takes its settings from "
            f"a [vm.{vm_name}] table in host.toml or a spec file",
            hint="describe the VM there (docs/backends.md lists each backend's keys)",
        )
    try:
        vm_spec = vm_settings(vm_name, backend, **vm_fields)
    except ValidationError as exc:
        named = _backend_of({"backend": backend})["backend"]
        hint = (
            "`vmshare add --help` lists the options and their values"
            if named == "libvirt"
            else f"the {named} backend's settings come from a [vm.{vm_name}] table in "
            f"host.toml ({host_settings_path()}) or in a spec file (docs/backends.md lists its "
            "keys)"
        )
        raise _spec_error(exc, "arguments", root=VmSpec, hint=hint) from None
    return share, vm_spec


def _described(vm: VmSpec, backend: str | None, connection: str | None) -> VmSpec:
    """A VM host.toml describes, checked against the command line's --backend/--connection."""
    wanted = _backend_of({**vm.model_dump(), "backend": backend})["backend"] if backend else None
    if wanted is not None and wanted != vm.backend:
        raise SpecError(
            f"VM {vm.name!r} is a {vm.backend} VM in host.toml, but --backend says {backend}",
            hint="drop --backend, or fix the [vm.NAME] table in host.toml",
        )
    if connection is None:
        return vm
    if vm.backend != "libvirt":
        raise SpecError(
            f"--connection is a libvirt setting; VM {vm.name!r} is a {vm.backend} VM",
            hint="drop --connection: its settings come from host.toml",
        )
    return vm.model_copy(update={"connection": connection})


def host_settings_path() -> Path:
    override = os.environ.get("VMSHARE_HOST_CONFIG")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("vmshare")) / "host.toml"


def load_host_settings(spec: Spec | None = None) -> HostSettings:
    """host.toml (``VMSHARE_HOST_CONFIG`` overrides its path), or the spec's own [host] table."""
    if spec is not None and spec.host is not None:
        return spec.host
    path = host_settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return HostSettings()
    try:
        return HostSettings.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}", hint="fix the TOML syntax") from None
    except ValidationError as exc:
        hint = f"fix it in {path} (see docs/network.md); `vmshare doctor` checks it"
        raise _spec_error(exc, str(path), text, root=HostSettings, hint=hint) from None


def json_schema() -> dict[str, Any]:
    return Spec.model_json_schema()
