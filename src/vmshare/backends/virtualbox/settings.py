"""The settings of a VirtualBox VM: ``[vm.NAME] backend = "virtualbox"``."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from vmshare.backends.settings import VmSettings, plain


class VirtualboxVm(VmSettings):
    backend: Literal["virtualbox"] = "virtualbox"
    machine: str | None = None  # the VM's name or UUID in VirtualBox (default: the [vm.NAME] name)
    adapter: Literal["auto", "sdk", "vboxmanage"] = "auto"  # auto: the SDK when importable
    # let the guest create symlinks on the host in vmshare's folders (VirtualBox's
    # VBoxInternal2/SharedFoldersEnableSymlinksCreate/NAME): off, as VirtualBox has it
    symlinks: bool = False

    @field_validator("machine")
    @classmethod
    def _machine(cls, value: str | None) -> str | None:
        value = plain(value, "machine")
        if value is not None and (not value or value.startswith("-")):
            raise ValueError("machine may not be empty or start with '-'")
        return value

    def connection_key(self) -> str:
        return f"local|{self.adapter}"

    @property
    def where(self) -> str:
        return "VirtualBox on this host"
