"""Registry of hypervisor backends, imported lazily so that `vmshare --help` loads no SDK.

A backend is built from a VM's settings (its model lives in ``backends/<name>/settings.py``).
A backend whose SDK is missing fails with the install hint; one not built yet says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmshare.errors import BackendUnavailable, UsageError

if TYPE_CHECKING:
    from vmshare.backends.base import Backend
    from vmshare.backends.settings import VmSettings


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str | None  # None: planned, not implemented in this version
    sdk: str  # the import name of the SDK it needs ("" when it drives a program instead)
    extra: str  # the vmshare extra that installs it
    install_hint: str
    tool: str = ""  # the program it drives, when it needs one (vmrun, VBoxManage)
    # doctor (no VM named) tries the default connection; False when there is none to try (a
    # Hyper-V host is this Windows machine or a WinRM URL only a VM's settings give)
    probe_default: bool = True


REGISTRY: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry(
            "libvirt",
            "vmshare.backends.libvirt.backend",
            "libvirt",
            "libvirt",
            "pip install 'vmshare[libvirt]' (building it needs apt install libvirt-dev pkg-config)",
        ),
        BackendEntry(
            "vsphere",
            "vmshare.backends.vsphere.backend",
            "pyVmomi",
            "vmware",
            "pip install 'vmshare[vmware]'",
        ),
        BackendEntry(
            "vmware-desktop",
            "vmshare.backends.vmware_desktop.backend",
            "",
            "",
            "install VMware Workstation or Fusion (it brings vmrun)",
            tool="vmrun",
        ),
        BackendEntry(
            "virtualbox",
            "vmshare.backends.virtualbox.backend",
            "",  # pyvbox only for the SDK adapter; VBoxManage needs no Python package
            "virtualbox",
            "pip install 'vmshare[virtualbox]', and install VirtualBox (it brings VBoxManage)",
            tool="VBoxManage",
        ),
        BackendEntry(
            "hyperv",
            "vmshare.backends.hyperv.backend",
            "winrm",
            "hyperv",
            "pip install 'vmshare[hyperv]'",
            probe_default=False,
        ),
    )
}


def sdk_installed(entry: BackendEntry) -> bool:
    """Whether the backend's SDK can be imported, without importing it."""
    return not entry.sdk or importlib.util.find_spec(entry.sdk) is not None


def tool_installed(entry: BackendEntry) -> bool:
    """Whether the program the backend drives is on PATH (True when it drives none)."""
    return not entry.tool or shutil.which(entry.tool) is not None


def load_backend(settings: VmSettings) -> Backend:
    """The backend for a VM's settings (``vmshare.spec.VmSpec``), built from them."""
    name = settings.backend
    entry = REGISTRY.get(name)
    if entry is None:
        raise UsageError(f"unknown backend {name!r}", hint=f"choose one of: {', '.join(REGISTRY)}")
    if entry.module is None:
        raise BackendUnavailable(
            f"the {name} backend is not available in this version of vmshare yet",
            hint="use --backend libvirt (QEMU/KVM); see docs/backends.md for the roadmap",
        )
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == entry.sdk:
            raise BackendUnavailable(
                f"the {name} backend needs the Python package for {entry.sdk!r}",
                hint=entry.install_hint,
            ) from None
        raise
    backend: Backend = module.BACKEND(settings)
    return backend
