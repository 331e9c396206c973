"""The settings of a libvirt VM: ``[vm.NAME] backend = "libvirt"``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from vmshare.backends.settings import VmSettings, plain

DEFAULT_CONNECTION = "qemu:///system"


class LibvirtVm(VmSettings):
    backend: Literal["libvirt"] = "libvirt"
    connection: str = DEFAULT_CONNECTION  # the libvirt URI; ${ENV} and ~ are expanded

    @field_validator("connection", mode="before")
    @classmethod
    def _connection(cls, value: Any) -> Any:
        # a state file of vmshare <= 0.1 may hold null: the default then
        if value is None:
            return DEFAULT_CONNECTION
        return plain(value, "connection") if isinstance(value, str) else value

    def connection_key(self) -> str:
        return self.connection

    @property
    def where(self) -> str:
        return self.connection
