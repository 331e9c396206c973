"""The settings of a vSphere/ESXi VM: ``[vm.NAME] backend = "vsphere"`` (or ``"vmware"`` without
a ``vmx`` setting). The password is a reference (``password_env`` or a keyring entry), never a
value; certificates are checked unless ``insecure = true``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator

from vmshare.backends.settings import Credentials, Tls, VmSettings, plain

_SERVER = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class VsphereVm(Tls, Credentials, VmSettings):
    backend: Literal["vsphere"] = "vsphere"
    server: str  # vCenter or ESXi host name (host or host:port)
    datacenter: str | None = None  # default: the only one, or the VM found in any

    @field_validator("server", mode="before")
    @classmethod
    def _server(cls, value: object) -> object:
        if isinstance(value, str):
            value = plain(value, "server") or ""
            if not _SERVER.fullmatch(value):
                raise ValueError(f"server must be a host name or host:port, got {value!r}")
        return value

    @field_validator("datacenter")
    @classmethod
    def _datacenter(cls, value: str | None) -> str | None:
        return plain(value, "datacenter")

    def connection_key(self) -> str:
        tls = "insecure" if self.insecure else f"ca={self.ca_file or ''}"
        return f"{self.user}@{self.server}|{self.datacenter or ''}|{tls}"

    @property
    def where(self) -> str:
        return f"vSphere {self.server}"
