"""What is installed and reachable, and what to do about what is not. Imports no SDK to check it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from vmshare.backends import (
    REGISTRY,
    BackendEntry,
    load_backend,
    sdk_installed,
    tool_installed,
)
from vmshare.errors import VmshareError
from vmshare.state import StateStore

if TYPE_CHECKING:
    from vmshare.protocols.exportfile import OwnedConfigFile
    from vmshare.spec import HostSettings, Spec

VIRTIOFSD_PATHS = ("/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd")


class Check(BaseModel):
    name: str
    status: Literal["ok", "info", "warn", "fail"]
    detail: str
    hint: str | None = None


def _state_dir(store: StateStore) -> Check:
    folder = store.directory
    if hasattr(os, "geteuid") and (folder.is_symlink() or folder.exists()):
        info = folder.lstat()
        if folder.is_symlink() or info.st_uid != os.geteuid():
            why = "is a symlink" if folder.is_symlink() else f"belongs to uid {info.st_uid}"
            return Check(
                name="state dir",
                status="fail",
                detail=f"{folder} {why}: vmshare refuses a state dir that is not its user's own",
                hint="set VMSHARE_STATE_DIR to a folder of your own, or fix the folder's owner",
            )
        if info.st_mode & 0o077:
            return Check(
                name="state dir",
                status="ok",
                detail=f"{folder} (mode {info.st_mode & 0o777:o}: the next change tightens it "
                "to 700)",
            )
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


def _needs(entry: BackendEntry) -> list[str]:
    """What the backend needs, each said installed or missing (never installed unless found)."""
    needs = []
    if entry.sdk:
        have = "installed" if sdk_installed(entry) else "missing"
        needs.append(f"Python package {entry.sdk!r} {have}")
    if entry.tool:
        needs.append(f"{entry.tool} {'installed' if tool_installed(entry) else 'missing'}")
    return needs


def _not_built(entry: BackendEntry) -> Check:
    """A registry entry whose backend this version does not have: planned, nothing to do."""
    needs = _needs(entry)
    return Check(
        name=f"backend {entry.name}",
        status="info",
        detail="not built in this version" + (f" ({'; '.join(needs)})" if needs else ""),
    )


def _backends(connection: str | None) -> list[Check]:
    from vmshare.spec import vm_settings

    checks = []
    for entry in REGISTRY.values():
        name = f"backend {entry.name}"
        if entry.module is None:
            checks.append(_not_built(entry))
            continue
        if not sdk_installed(entry) or not tool_installed(entry):
            checks.append(
                Check(
                    name=name,
                    status="fail",
                    detail="; ".join(n for n in _needs(entry) if n.endswith("missing")),
                    hint=entry.install_hint,
                )
            )
            continue
        fields = {} if connection is None or entry.name != "libvirt" else {"connection": connection}
        try:
            if not entry.probe_default:
                raise VmshareError("no default connection")
            settings = vm_settings("vmshare-doctor-probe", entry.name, **fields)
        except (ValidationError, VmshareError):  # it needs a VM's settings (server, user...)
            needs = "; ".join(_needs(entry))
            detail = f"{needs}; `vmshare doctor VM` checks a VM's server"
            checks.append(Check(name=name, status="ok", detail=detail))
            continue
        try:
            backend = load_backend(settings)
            backend.inspect("vmshare-doctor-probe")  # any answer proves the connection works
            backend.close()
        except VmshareError as exc:
            checks.append(Check(name=name, status="fail", detail=exc.message, hint=exc.hint))
            continue
        checks.append(Check(name=name, status="ok", detail=f"connected to {backend.connection}"))
    return checks


def _file_servers() -> list[Check]:
    """Which NFS exporter and Samba vmshare would use, and whether their tools are there."""
    from vmshare.protocols.nfs import exporter_for
    from vmshare.protocols.smb import SambaExporter
    from vmshare.spec import load_host_settings

    try:
        settings = load_host_settings()
    except VmshareError as exc:
        return [Check(name="host.toml", status="fail", detail=exc.message, hint=exc.hint)]
    checks = []
    exporter = exporter_for(settings.nfs)
    if settings.nfs.exporter == "auto":
        how = (
            "auto: ganesha when it runs (its pidfile exists), else the kernel server; "
            "set [nfs] exporter in host.toml to choose"
        )
    else:
        how = "set by [nfs] exporter in host.toml"
    tool = {"kernel": "exportfs", "macos": "nfsd", "ganesha": "ganesha.nfsd"}[exporter.name]
    ganesha = shutil.which("ganesha.nfsd") or (
        "/usr/bin/ganesha.nfsd" if Path("/usr/bin/ganesha.nfsd").exists() else None
    )
    installed = (
        f"; nfs-ganesha is installed ({ganesha})" if ganesha and exporter.name != "ganesha" else ""
    )
    if not shutil.which(tool) and not (tool == "ganesha.nfsd" and ganesha):
        checks.append(
            Check(
                name="nfs exporter",
                status="warn",
                detail=f"{exporter.name} ({how}): {tool} not found; --protocol nfs will fail"
                + installed,
                hint="apt install nfs-kernel-server, or run nfs-ganesha and set "
                '[nfs] exporter = "ganesha" in host.toml (see docs/network.md)',
            )
        )
    else:
        checks.append(
            _running(
                Check(
                    name="nfs exporter",
                    status="ok",
                    detail=f"{exporter.name} ({how}), entries in {exporter.path}{installed}",
                ),
                exporter,
                "nfs",
            )
        )
    if shutil.which("smbcontrol") and Path(settings.smb.smb_conf).exists():
        samba = Check(
            name="smb exporter",
            status="ok",
            detail=f"samba, sections in {settings.smb.include_file}",
        )
        checks.append(_running(samba, SambaExporter(settings.smb), "smb"))
    else:
        checks.append(
            Check(
                name="smb exporter",
                status="warn",
                detail="Samba not found; --protocol smb will fail",
                hint="apt install samba",
            )
        )
    checks.append(_root_commands(settings))
    return checks


def _running(check: Check, exporter: OwnedConfigFile, protocol: str) -> Check:
    """``check`` as a warning when the exporter's server does not run (as far as vmshare can
    tell: a server it cannot probe keeps the row as it is)."""
    evidence = exporter.liveness()
    if evidence.running is not False:
        return check
    down = exporter.not_running(evidence)
    return Check(
        name=check.name,
        status="warn",
        detail=f"{check.detail}; {down.message}: --protocol {protocol} will fail",
        hint=down.hint,
    )


def _root_commands(settings: HostSettings) -> Check:
    """Whether vmshare may run its root commands: as root, or through sudo without a password
    (asked with ``sudo -n -l``, which runs nothing)."""
    from vmshare import hostexec
    from vmshare.host import privileged

    name = "root commands"
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        return Check(name=name, status="ok", detail="running as root: no sudo needed")
    if shutil.which("sudo") is None:
        return Check(
            name=name,
            status="warn",
            detail="not root and sudo is not installed: nfs and smb shares will fail",
            hint=hostexec.SUDOERS_HINT,
        )
    commands = privileged.commands(settings)
    refused = []
    for command in commands:
        argv = [hostexec.program(command.argv[0]), *command.argv[1:]]
        if command.pattern is not None:
            argv[-1] = "vmshare-0000000000000000"  # a name the pattern admits
        asked = hostexec.run(["sudo", "-n", "-l", *argv], check=False, timeout=hostexec.QUICK)
        if asked.returncode != 0:
            refused.append(argv)
    if refused:
        first = " ".join(refused[0])
        return Check(
            name=name,
            status="warn",
            detail=f"sudo does not allow {len(refused)} of the {len(commands)} commands vmshare "
            f"runs as root (first: {first}): nfs and smb shares will fail",
            hint=hostexec.SUDOERS_HINT,
        )
    return Check(
        name=name,
        status="ok",
        detail=f"sudo allows all {len(commands)} commands vmshare runs as root",
    )


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


_HELPERS = (
    "cat /proc/filesystems; "
    "for h in mount.nfs mount.nfs4 mount.cifs; do command -v $h >/dev/null && echo have:$h; done"
)
_DIAL = (
    'if command -v nc >/dev/null; then nc -z -w 3 "$1" "$2" </dev/null && echo open '
    "|| echo closed; else echo unknown; fi"
)


def diagnose_vm(
    store: StateStore, vm: str, connection: str | None = None, spec_file: Spec | None = None
) -> list[Check]:
    """One VM end to end: the backend's own checks (a vSphere server's TLS, login and version),
    it exists and runs, the guest channel answers, the guest has what each protocol mounts
    with, and the host's file servers answer from inside the guest.

    The VM's settings come from ``spec_file``'s ``[vm.NAME]`` table when given, else from the
    state's record of a share in it, else from host.toml's table (without ``connection``), else
    the defaults."""
    from vmshare.core import Session
    from vmshare.spec import load_host_settings, vm_settings

    records = store.load().listed(vm)
    fields = {} if connection is None else {"connection": connection}
    if spec_file is not None and vm in spec_file.vm:
        spec = spec_file.vm[vm]
    else:
        known = None if records or connection else load_host_settings().vm.get(vm)
        spec = records[0].vm_spec if records else known or vm_settings(vm, **fields)
    session = Session({vm: spec}, store, spec_file)
    name = f"vm {vm}"
    try:
        try:
            rows = session.backend(vm).diagnose(vm)
        except VmshareError as exc:
            return [Check(name=name, status="fail", detail=exc.message, hint=exc.hint)]
        server = [Check(**dataclasses.asdict(row)) for row in rows]
        if any(check.status == "fail" for check in server):
            return server
        try:
            facts = session.probe_vm(vm, [])
        except VmshareError as exc:
            return [*server, Check(name=name, status="fail", detail=exc.message, hint=exc.hint)]
        if not facts.exists:
            return [
                *server,
                Check(
                    name=name,
                    status="fail",
                    detail=f"not found on {facts.connection}",
                    hint=facts.find_hint,
                ),
            ]
        if not facts.running:
            return [
                *server,
                Check(
                    name=name,
                    status="warn",
                    detail="exists but is not running: the guest cannot be checked",
                    hint="start it (`vmshare add --restart` starts it when needed)",
                ),
            ]
        checks = [
            *server,
            Check(name=name, status="ok", detail=f"running on {facts.connection}"),
        ]
        if not facts.guest.reachable:
            checks.append(
                Check(
                    name="guest channel",
                    status="fail",
                    detail=facts.guest.error or "no guest channel answered",
                    hint=facts.guest_hint,
                )
            )
            return checks
        checks.append(Check(name="guest channel", status="ok", detail=facts.guest.channel or ""))
        if session.guest_os(vm) == "windows":
            checks.append(
                Check(
                    name="guest os",
                    status="warn",
                    detail="Windows: vmshare's Windows guest support is a skeleton, not yet "
                    "tested against a real guest; no mount checks",
                    hint="Windows guests map SMB shares (--protocol smb)",
                )
            )
            return checks
        channel = session.guest(vm).channel
        text = channel.run(["sh", "-c", _HELPERS]).stdout.decode("utf-8", "replace")
        kernel = {
            line.split()[-1] for line in text.splitlines() if line.strip() and ":" not in line
        }
        helpers = {
            line.removeprefix("have:") for line in text.splitlines() if line.startswith("have:")
        }
        for protocol, ok, missing_hint in (
            ("virtiofs", "virtiofs" in kernel, "a guest kernel with CONFIG_VIRTIO_FS"),
            ("9p", "9p" in kernel, "a guest kernel with 9p and 9pnet_virtio (modprobe 9p)"),
            (
                "nfs",
                bool(helpers & {"mount.nfs", "mount.nfs4"}),
                "apt install nfs-common in the guest",
            ),
            ("smb", "mount.cifs" in helpers, "apt install cifs-utils in the guest"),
        ):
            checks.append(
                Check(name=f"guest {protocol}", status="ok", detail="can mount")
                if ok
                else Check(
                    name=f"guest {protocol}",
                    status="warn",
                    detail=f"cannot mount {protocol}: --protocol {protocol} will fail",
                    hint=missing_hint,
                )
            )
        checks += _servers_from_guest(
            channel, spec.host_address or facts.guest.gateway, load_host_settings()
        )
        return checks
    finally:
        session.close()


def _servers_from_guest(channel: Any, host: str | None, settings: Any) -> list[Check]:
    checks = []
    for protocol, port in (("nfs", settings.nfs.port or 2049), ("smb", settings.smb.port or 445)):
        name = f"guest -> host {protocol}"
        if not host:
            checks.append(
                Check(name=name, status="warn", detail="the guest has no route to the host")
            )
            continue
        answer = channel.run(["sh", "-c", _DIAL, "doctor", host, str(port)]).stdout.decode().strip()
        if answer == "open":
            checks.append(Check(name=name, status="ok", detail=f"{host}:{port} answers"))
        elif answer == "closed":
            checks.append(
                Check(
                    name=name,
                    status="warn",
                    detail=f"{host}:{port} does not answer from the guest: "
                    f"--protocol {protocol} will fail",
                    hint=f"start the {protocol} server on the host, or open port {port} to the VM",
                )
            )
        else:
            checks.append(
                Check(
                    name=name,
                    status="info",
                    detail=f"not checked: the guest has no nc to dial {host}:{port}",
                )
            )
    return checks
