"""Which protocol a share uses, and why."""

from __future__ import annotations

from vmshare.errors import UsageError
from vmshare.plan.model import Choice
from vmshare.protocols import device_protocol, nfs, smb
from vmshare.spec import ShareSpec

DEVICE_PROTOCOLS: dict[str, tuple[str, ...]] = {"libvirt": ("virtiofs", "9p")}


NETWORK_PROTOCOLS = ("nfs", "smb")


NATIVE_PROTOCOL: dict[str, str] = {"libvirt": "virtiofs"}


def choose_protocol(share: ShareSpec, backend: str) -> Choice:
    """Pick the share protocol for ``share`` on ``backend`` and say why."""
    devices = DEVICE_PROTOCOLS.get(backend, ())
    offered = (*devices, *NETWORK_PROTOCOLS)
    requested = NATIVE_PROTOCOL.get(backend, "") if share.protocol == "native" else share.protocol
    if requested not in (*offered, "auto"):
        raise UsageError(
            f"backend {backend} cannot share with {share.protocol}",
            hint=f"use one of: auto, {', '.join(offered)}",
        )
    if share.owner is not None and requested not in NETWORK_PROTOCOLS:
        raise UsageError(
            "--owner needs a protocol that maps ownership (nfs, smb); "
            "virtiofs and 9p show the host's own uids and gids",
            hint="add --protocol nfs (or smb), or drop --owner and chown the host directory",
        )
    warnings: list[str] = []
    if requested == "auto":
        if share.readonly and "9p" in devices:
            name = "9p"
            reason = (
                "read-only: QEMU's 9p server refuses writes itself, while virtiofsd 7.2 has no "
                "read-only mode (virtiofs would be read-only only through the guest's mount)"
            )
        else:
            name = devices[0] if devices else "nfs"
            reason = "the fastest device share, well ahead of 9p for metadata"
    else:
        name, reason = requested, "asked for"
    _check_device_limits(share, name, asked=requested != "auto")
    if name in NETWORK_PROTOCOLS:
        semantics = nfs.SEMANTICS if name == "nfs" else smb.SEMANTICS
        if name == "nfs":
            reason += f"; {nfs.NEGOTIATION}"
            warnings.append(nfs.SETUID_WARNING)
        if share.readonly:
            reason += "; read-only is enforced by the server's export"
    else:
        protocol = device_protocol(name)
        semantics = protocol.semantics
        if share.readonly and not protocol.readonly_at_device:
            warnings.append(
                f"read-only is enforced only by the guest's mount ({name} has no read-only mode "
                "here): root in the guest could remount it read-write; use 9p to enforce it"
            )
    return Choice(
        share=share.key, protocol=name, reason=reason, semantics=semantics, warnings=warnings
    )


# virtiofsd gets the host path inside "-o source=...", where ',' separates options and '\\'
# escapes: libvirt 9.0 passes both through unescaped, and the path arrives mangled.
VIRTIOFS_UNSAFE = (",", "\\")


def _check_device_limits(share: ShareSpec, name: str, asked: bool) -> None:
    if name != "virtiofs":
        return
    unsafe = [ch for ch in VIRTIOFS_UNSAFE if ch in str(share.source)]
    if unsafe:
        raise UsageError(
            f"virtiofs cannot carry {' or '.join(repr(c) for c in unsafe)} in the host path "
            f"{share.source} (libvirt hands it to virtiofsd inside an option list)",
            hint="rename the folder, or pass --protocol 9p (needs --restart) or --protocol nfs",
        )
    if share.readonly and asked:
        raise UsageError(
            "libvirt refuses read-only virtiofs devices, and a read-only guest mount alone "
            "could be remounted read-write by root in the guest",
            hint="drop --protocol virtiofs (read-only shares use 9p, enforced by QEMU) or use nfs",
        )
