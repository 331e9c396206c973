"""The settings every VM has, whatever its backend: the base of each backend's settings model
(``backends/<name>/settings.py``), and the pieces several of them share (TLS, a password
reference). The union of all of them is ``vmshare.spec.VmSpec``.

A settings model holds no secret, only references to one (``vmshare.secrets.SecretRef``), so
dumping it into state.json, a plan or ``--json`` output is safe.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vmshare.secrets import PasswordRef, password_shorthand
from vmshare.values import address, expand, no_control

_VM_NAME = re.compile(r"^[^\x00-\x1f\x7f/:]{1,200}$")


class GuestAccess(BaseModel):
    """How vmshare reaches inside the guest."""

    model_config = ConfigDict(extra="forbid")
    channel: Literal["auto", "agent", "ssh"] = "auto"
    # the guest's OS: auto takes what the backend reports (Capabilities.guest_os)
    os: Literal["auto", "linux", "windows"] = "auto"
    ssh_host: str | None = None
    ssh_user: str = "root"
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_key: str | None = None
    # a known_hosts file holding the guest's host key; host keys are always checked
    ssh_known_hosts: str | None = None
    # the guest account of native channels that log in (VMware Tools guest operations, vmrun,
    # VirtualBox guest control); the password is a reference (login_password_env = "NAME")
    login_user: str = "root"
    login_password: PasswordRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _login_shorthand(cls, data: Any) -> Any:
        return password_shorthand(data, "login_password")

    @field_validator("ssh_host", "ssh_user", "ssh_key", "ssh_known_hosts", "login_user")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None:
            no_control(value, "ssh setting")
            if value.startswith("-"):
                raise ValueError("ssh settings may not start with '-'")
        return value

    @field_validator("ssh_known_hosts")
    @classmethod
    def _one_file(cls, value: str | None) -> str | None:
        if value is not None and any(ch.isspace() for ch in value):
            raise ValueError("ssh_known_hosts may not contain spaces (ssh reads them as a list)")
        return value


class VmSettings(BaseModel):
    """A ``[vm.NAME]`` table: what every backend's VM settings have in common."""

    model_config = ConfigDict(extra="forbid")
    name: str
    backend: str  # each backend's model narrows it to its own name: the union's discriminator
    guest: GuestAccess = GuestAccess()
    # network shares: the address the host's file server sees the VM connect from (default:
    # discovered), and the address the guest dials to reach the host (default: its gateway)
    client_address: str | None = None
    host_address: str | None = None

    @field_validator("client_address")
    @classmethod
    def _client(cls, value: str | None) -> str | None:
        return address(value, network=True)

    @field_validator("host_address")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return address(value, network=False)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _VM_NAME.fullmatch(value):
            raise ValueError(f"invalid VM name {value!r}: no '/', ':' or control characters")
        return value

    def connection_key(self) -> str:
        """VMs whose settings give equal keys share one backend object (one connection): the
        key holds every setting the backend itself reads."""
        return self.where

    @property
    def where(self) -> str:
        """Where the backend finds this VM, for messages (libvirt: the connection URI)."""
        return self.backend


def plain(value: str | None, what: str) -> str | None:
    """A setting with ``${ENV}``/``~`` expanded and no control characters."""
    return None if value is None else no_control(expand(value), what)


class Tls(BaseModel):
    """Certificate checks of a TLS connection: on, unless ``insecure = true`` says otherwise."""

    model_config = ConfigDict(extra="forbid")
    ca_file: str | None = None  # the CA bundle that signed the server's certificate
    insecure: bool = False  # explicit opt-in: no certificate check at all

    @model_validator(mode="before")
    @classmethod
    def _no_verify_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("verify") is False:
            raise ValueError(
                "to turn certificate checks off, set insecure = true (an explicit opt-in)"
            )
        if isinstance(data, dict) and data.get("verify") is True:
            data = {key: value for key, value in data.items() if key != "verify"}
        return data

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        return plain(value, "ca_file")

    @model_validator(mode="after")
    def _one_choice(self) -> Tls:
        if self.insecure and self.ca_file is not None:
            raise ValueError("set ca_file (check against that CA) or insecure, not both")
        return self

    @property
    def verify(self) -> bool:
        return not self.insecure


class Credentials(BaseModel):
    """A user and a reference to their password (``password_env = "NAME"`` is short for
    ``password = { env = "NAME" }``); a literal password is refused."""

    model_config = ConfigDict(extra="forbid")
    user: str
    password: PasswordRef

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return password_shorthand(data)

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not value or no_control(value, "user") != value.strip():
            raise ValueError("user may not be empty or start or end with spaces")
        return value
