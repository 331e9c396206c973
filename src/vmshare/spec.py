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

import ipaddress
import os
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vmshare.errors import SpecError, unknown

BackendName = Literal["libvirt", "vmware", "vmware-desktop", "virtualbox", "hyperv"]
ProtocolName = Literal["auto", "native", "virtiofs", "9p", "vboxsf", "hgfs", "nfs", "smb"]
SPEC_VERSION: Literal[1] = 1

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VM_NAME = re.compile(r"^[^\x00-\x1f\x7f/:]{1,200}$")
_MOUNT_OPTION = re.compile(r"^[A-Za-z0-9_.=:/+@-]+$")


def _no_control(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(
            f"{what} contains a control character (newline, tab, NUL...); "
            "rename it: such names break fstab and export files"
        )
    return value


def expand(value: str, environ: dict[str, str] | None = None) -> str:
    """Expand ``${NAME}`` (strictly: an unset variable is an error) and a leading ``~``."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"environment variable ${{{name}}} is not set")
        return env[name]

    return os.path.expanduser(_ENV_REF.sub(sub, value))


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


class GuestAccess(BaseModel):
    """How vmshare reaches inside the guest."""

    model_config = ConfigDict(extra="forbid")
    channel: Literal["auto", "agent", "ssh"] = "auto"
    # the guest's OS; "auto": as the backend reports it (a guest whose OS it cannot tell: linux)
    os: Literal["auto", "linux", "windows"] = "auto"
    ssh_host: str | None = None
    ssh_user: str = "root"
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_key: str | None = None
    # a known_hosts file holding the guest's host key; host keys are always checked
    ssh_known_hosts: str | None = None

    @field_validator("ssh_host", "ssh_user", "ssh_key", "ssh_known_hosts")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None:
            _no_control(value, "ssh setting")
            if value.startswith("-"):
                raise ValueError("ssh settings may not start with '-'")
        return value

    @field_validator("ssh_known_hosts")
    @classmethod
    def _one_file(cls, value: str | None) -> str | None:
        if value is not None and any(ch.isspace() for ch in value):
            raise ValueError("ssh_known_hosts may not contain spaces (ssh reads them as a list)")
        return value


def _address(value: str | None, *, network: bool) -> str | None:
    if value is None:
        return None
    try:
        parsed = ipaddress.ip_network(value) if network else ipaddress.ip_address(value)
    except ValueError:
        kind = "an IP address or network (CIDR)" if network else "an IP address"
        raise ValueError(f"{value!r} is not {kind}") from None
    if isinstance(parsed, ipaddress.IPv4Network | ipaddress.IPv6Network):
        if parsed.prefixlen == 0:
            raise ValueError("refusing to export to every address (prefix /0)")
        if parsed.num_addresses == 1:
            return str(parsed.network_address)
    return str(parsed)


class VmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    backend: BackendName = "libvirt"
    connection: str | None = None
    guest: GuestAccess = GuestAccess()
    # network shares: the address the host's file server sees the VM connect from (default:
    # discovered), and the address the guest dials to reach the host (default: its gateway)
    client_address: str | None = None
    host_address: str | None = None

    @field_validator("client_address")
    @classmethod
    def _client(cls, value: str | None) -> str | None:
        return _address(value, network=True)

    @field_validator("host_address")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return _address(value, network=False)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _VM_NAME.fullmatch(value):
            raise ValueError(f"invalid VM name {value!r}: no '/', ':' or control characters")
        return value

    @field_validator("connection")
    @classmethod
    def _connection(cls, value: str | None) -> str | None:
        return None if value is None else _no_control(expand(value), "connection")


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
        if not value.is_absolute():
            raise ValueError("source must be an absolute path once resolved")
        return Path(os.path.normpath(value))

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        _no_control(value, "guest path")
        if not value.startswith("/"):
            raise ValueError(f"guest path must be absolute (start with '/'), got {value!r}")
        return normal_guest_path(value)

    @field_validator("mount_options")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
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
    mount_options: list[str] = ["hard", "proto=tcp", "rsize=1048576", "wsize=1048576", "actimeo=1"]


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
    # cache and revalidates every actimeo seconds (docs/semantics.md).
    mount_options: list[str] = ["vers=3.1.1", "mfsymlinks", "cache=loose", "actimeo=1"]


class HostSettings(BaseModel):
    """Machine-level settings: host.toml, or a [host] table in a spec file."""

    model_config = ConfigDict(extra="forbid")
    nfs: NfsHost = NfsHost()
    smb: SmbHost = SmbHost()


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = SPEC_VERSION
    host: HostSettings | None = None
    vm: dict[str, VmSpec] = {}
    share: list[ShareSpec] = []

    @model_validator(mode="before")
    @classmethod
    def _vm_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("vm"), dict):
            data = dict(data)
            data["vm"] = {
                key: ({"name": key, **value} if isinstance(value, dict) else value)
                for key, value in data["vm"].items()
            }
        return data

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
            if share.name:
                if share.name in names:
                    raise ValueError(f"share name {share.name!r} is used twice")
                names.add(share.name)
        return self

    def vm_for(self, name: str) -> VmSpec:
        """The VM's settings; a VM the spec does not describe gets the defaults."""
        return self.vm.get(name) or VmSpec(name=name)


# ---------------------------------------------------------------------------------- loaders


def _locate_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a validation error's location in the TOML text."""
    lines = text.splitlines()
    start = 0
    if len(loc) >= 2 and loc[0] == "share" and isinstance(loc[1], int):
        headers = [i for i, line in enumerate(lines) if line.strip().startswith("[[share]]")]
        if loc[1] >= len(headers):
            return None
        start = headers[loc[1]]
        key = next((part for part in loc[2:] if isinstance(part, str)), None)
    elif len(loc) >= 2 and loc[0] == "vm":
        pattern = re.compile(rf"^\s*\[vm\.\"?{re.escape(str(loc[1]))}\"?\]")
        start = next((i for i, line in enumerate(lines) if pattern.match(line)), 0)
        key = next((part for part in loc[2:] if isinstance(part, str)), None)
    else:
        key = next((part for part in loc if isinstance(part, str)), None)
    if key is None:
        return start + 1
    key_pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
    for i in range(start, len(lines)):
        if i > start and lines[i].lstrip().startswith("[") and loc and loc[0] == "share":
            break
        if key_pattern.match(lines[i]):
            return i + 1
    return start + 1 if start else None


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "spec"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for a in get_args(annotation) if (m := _model_in(a)) is not None), None)


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose field ``loc`` names (``share[0].x`` -> ShareSpec), to list its keys."""
    model, dict_key = root, False
    for part in loc:
        if isinstance(part, int) or dict_key:
            dict_key = False
            continue
        field = model.model_fields.get(part)
        sub = _model_in(field.annotation) if field is not None else None
        if field is None or sub is None:
            return None
        dict_key = get_origin(field.annotation) is dict
        model = sub
    return model


def _user_words(err: Any, loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    """The message in the user's words: an unknown key or choice names the closest one."""
    kind, field = err.get("type"), str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        return unknown("key", field, model.model_fields if model else [])
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        return unknown(field.replace("_", " "), err.get("input"), choices)
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def _spec_error(
    exc: ValidationError,
    origin: str,
    text: str | None = None,
    root: type[BaseModel] | None = None,
    hint: str | None = None,
) -> SpecError:
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    message = _user_words(err, loc, root or Spec)
    where = _format_loc(loc)
    line = _locate_line(text, loc) if text is not None else None
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
            share["source"] = str(path if path.is_absolute() else base / path)
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
    backend: str = "libvirt",
    connection: str | None = None,
    **options: Any,
) -> tuple[ShareSpec, VmSpec]:
    """``SRC VM:DST`` plus CLI options -> the same models a spec file gives."""
    vm_name, target = parse_vm_target(vm_target)
    raw = _resolve_sources({"share": [{"source": source}]}, base or Path.cwd())
    fields = {key: value for key, value in options.items() if value is not None}
    try:
        share = ShareSpec.model_validate(
            {"source": raw["share"][0]["source"], "vm": vm_name, "target": target, **fields}
        )
        vm_spec = VmSpec.model_validate(
            {"name": vm_name, "backend": backend, "connection": connection}
        )
    except ValidationError as exc:
        model = ShareSpec if exc.title == "ShareSpec" else VmSpec
        hint = "`vmshare add --help` lists the options and their values"
        raise _spec_error(exc, "arguments", root=model, hint=hint) from None
    return share, vm_spec


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
