"""What is installed and reachable, and what to do about what is not. Imports no SDK to check it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vmshare.backends import REGISTRY, load_backend, sdk_installed
from vmshare.errors import VmshareError
from vmshare.state import StateStore

VIRTIOFSD_PATHS = ("/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd")


class Check(BaseModel):
    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    hint: str | None = None


def _state_dir(store: StateStore) -> Check:
    folder = store.directory
    probe = folder if folder.exists() else folder.parent
    while not probe.exists():
        probe = probe.parent
    if os.access(probe, os.W_OK):
        return Check(name="state dir", status="ok", detail=str(folder))
    return Check(
        name="state dir",
        status="fail",
        detail=f"{folder} is not writable",
        hint="set VMSHARE_STATE_DIR to a writable folder",
    )


def _backends(connection: str | None) -> list[Check]:
    checks = []
    for entry in REGISTRY.values():
        if entry.module is None:
            checks.append(
                Check(name=f"backend {entry.name}", status="warn", detail="not in this version yet")
            )
            continue
        if not sdk_installed(entry):
            checks.append(
                Check(
                    name=f"backend {entry.name}",
                    status="fail",
                    detail=f"Python package for {entry.sdk!r} missing",
                    hint=entry.install_hint,
                )
            )
            continue
        try:
            backend = load_backend(entry.name, connection)
            backend.inspect("vmshare-doctor-probe")  # any answer proves the connection works
            backend.close()
        except VmshareError as exc:
            checks.append(
                Check(
                    name=f"backend {entry.name}", status="fail", detail=exc.message, hint=exc.hint
                )
            )
            continue
        checks.append(
            Check(
                name=f"backend {entry.name}",
                status="ok",
                detail=f"connected to {backend.connection}",
            )
        )
    return checks


def _file_servers() -> list[Check]:
    """Which NFS exporter and Samba vmshare would use, and whether their tools are there."""
    from vmshare.protocols.nfs import exporter_for
    from vmshare.spec import load_host_settings

    try:
        settings = load_host_settings()
    except VmshareError as exc:
        return [Check(name="host.toml", status="fail", detail=exc.message, hint=exc.hint)]
    checks = []
    exporter = exporter_for(settings.nfs)
    tool = {"kernel": "exportfs", "macos": "nfsd", "ganesha": None}[exporter.name]
    if tool and not shutil.which(tool):
        checks.append(
            Check(
                name="nfs exporter",
                status="warn",
                detail=f"{exporter.name}: {tool} not found; --protocol nfs will fail",
                hint="apt install nfs-kernel-server (or nfs-ganesha)",
            )
        )
    else:
        checks.append(
            Check(
                name="nfs exporter",
                status="ok",
                detail=f"{exporter.name}, entries in {exporter.path}",
            )
        )
    if shutil.which("smbcontrol") and Path(settings.smb.smb_conf).exists():
        checks.append(
            Check(
                name="smb exporter",
                status="ok",
                detail=f"samba, sections in {settings.smb.include_file}",
            )
        )
    else:
        checks.append(
            Check(
                name="smb exporter",
                status="warn",
                detail="Samba not found; --protocol smb will fail",
                hint="apt install samba",
            )
        )
    return checks


def diagnose(store: StateStore, connection: str | None = None) -> list[Check]:
    checks = [
        Check(name="python", status="ok", detail=sys.version.split()[0]),
        _state_dir(store),
        *_backends(connection),
        *_file_servers(),
    ]
    virtiofsd = next((p for p in VIRTIOFSD_PATHS if Path(p).exists()), None)
    checks.append(
        Check(name="virtiofsd", status="ok", detail=virtiofsd)
        if virtiofsd
        else Check(
            name="virtiofsd",
            status="warn",
            detail="not found: virtiofs shares will fail, 9p still works",
            hint="apt install qemu-system-common (or virtiofsd)",
        )
    )
    checks.append(
        Check(name="ssh client", status="ok", detail=shutil.which("ssh") or "")
        if shutil.which("ssh")
        else Check(
            name="ssh client",
            status="warn",
            detail="not found: the ssh guest channel is unavailable",
            hint="apt install openssh-client",
        )
    )
    return checks
