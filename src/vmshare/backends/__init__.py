"""Registry of hypervisor backends, imported lazily so that `vmshare --help` loads no SDK.

A backend whose SDK is missing fails with the install hint; one not built yet says so.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmshare.errors import BackendUnavailable, UsageError

if TYPE_CHECKING:
    from vmshare.backends.base import Backend


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str | None  # None: planned, not implemented in this version
    sdk: str  # the import name of the SDK it needs
    extra: str  # the vmshare extra that installs it
    install_hint: str


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
        BackendEntry("vmware", None, "pyVmomi", "vmware", "pip install 'vmshare[vmware]'"),
        BackendEntry("vmware-desktop", None, "", "", "needs vmrun from VMware Workstation/Fusion"),
        BackendEntry(
            "virtualbox", None, "virtualbox", "virtualbox", "pip install 'vmshare[virtualbox]'"
        ),
        BackendEntry("hyperv", None, "winrm", "hyperv", "pip install 'vmshare[hyperv]'"),
    )
}


def sdk_installed(entry: BackendEntry) -> bool:
    """Whether the backend's SDK can be imported, without importing it."""
    return not entry.sdk or importlib.util.find_spec(entry.sdk) is not None


def load_backend(name: str, connection: str | None = None) -> Backend:
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
    backend: Backend = module.BACKEND(connection)
    return backend
