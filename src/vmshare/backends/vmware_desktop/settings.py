"""The settings of a VMware Workstation/Fusion VM: ``[vm.NAME] backend = "vmware-desktop"`` (or
``"vmware"`` with a ``vmx`` setting)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from vmshare.backends.settings import VmSettings, plain


class VmwareDesktopVm(VmSettings):
    backend: Literal["vmware-desktop"] = "vmware-desktop"
    # the VM's .vmx file (${ENV} and ~ are expanded), or its name in the Workstation/Fusion
    # inventory (the VM library)
    vmx: str
    product: Literal["auto", "ws", "fusion"] = "auto"  # vmrun -T: Workstation or Fusion
    vmrun: str | None = None  # the vmrun program (default: found on PATH or where VMware puts it)

    @field_validator("vmx")
    @classmethod
    def _vmx(cls, value: str) -> str:
        path = plain(value, "vmx") or ""
        is_path = "/" in path or "\\" in path
        if not path.strip() or (is_path and not path.lower().endswith(".vmx")):
            raise ValueError(
                f"vmx must be the path of the VM's .vmx file or its name in the VMware "
                f"inventory, got {value!r}"
            )
        return path

    @field_validator("vmrun")
    @classmethod
    def _vmrun(cls, value: str | None) -> str | None:
        return plain(value, "vmrun")

    def connection_key(self) -> str:
        # the backend reads the .vmx of its VM: one backend object per VM
        return f"{self.product}|{self.vmrun or ''}|{self.vmx}"

    @property
    def where(self) -> str:
        return self.vmx
