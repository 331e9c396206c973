"""Which protocol a share uses, and why: read only from the VM's capabilities (facts).

``auto`` takes the backend's best device share; a read-only share prefers a device whose
hypervisor enforces read-only; a backend (or guest) without a device share uses the network
protocol it supports, nfs before smb.
"""

from __future__ import annotations

from vmshare.errors import UsageError
from vmshare.facts import DeviceCapability, Facts, VmFacts
from vmshare.plan.model import Choice
from vmshare.protocols import nfs, smb
from vmshare.spec import ShareSpec, Spec

NETWORK_PROTOCOLS = ("nfs", "smb")


def choose_protocol(share: ShareSpec, vm: VmFacts) -> Choice:
    """Pick the share protocol for ``share`` on the VM that ``vm`` describes and say why."""
    caps = vm.capabilities
    devices = [d.protocol for d in caps.devices]
    offered = (*devices, *caps.network)
    requested: str = share.protocol
    if requested == "native":
        if not devices:
            raise UsageError(
                f"backend {vm.backend} has no device share (native) for VM {share.vm!r}",
                hint=f"use one of: auto, {', '.join(offered)}",
            )
        requested = devices[0]
    if requested not in (*offered, "auto"):
        raise UsageError(
            f"backend {vm.backend} cannot share with {share.protocol} into VM {share.vm!r}",
            hint=f"use one of: auto, {', '.join(offered)}",
        )
    network_only = requested == "auto" and not devices
    if share.owner is not None and requested not in caps.network and not network_only:
        raise UsageError(
            "--owner needs a protocol that maps ownership (nfs, smb); device shares show the "
            "host's own uids and gids",
            hint="add --protocol nfs (or smb), or drop --owner and chown the host directory",
        )
    if requested == "auto":
        name, reason = _auto(share, vm)
    else:
        name, reason = requested, "asked for"
    warnings: list[str] = []
    device = caps.device(name)
    if device is None:
        semantics = nfs.SEMANTICS if name == "nfs" else smb.SEMANTICS
        if name == "nfs":
            reason += f"; {nfs.NEGOTIATION}"
            warnings.append(nfs.SETUID_WARNING)
        if share.readonly:
            reason += "; read-only is enforced by the server's export"
    else:
        _check_device_limits(share, device, vm, asked=requested != "auto")
        semantics = device.semantics
        if share.readonly and not device.readonly_enforced:
            warnings.append(
                f"read-only is enforced only by the guest's mount ({name} has no read-only "
                "mode here): root in the guest could remount it read-write"
                + _enforced_by(caps.devices)
            )
    return Choice(
        share=share.key, protocol=name, reason=reason, semantics=semantics, warnings=warnings
    )


def _auto(share: ShareSpec, vm: VmFacts) -> tuple[str, str]:
    caps = vm.capabilities
    if caps.devices:
        best = caps.devices[0]
        if share.readonly and not best.readonly_enforced:
            enforced = next((d for d in caps.devices if d.readonly_enforced), None)
            if enforced is not None:
                why = best.readonly_refused or f"{best.protocol} has no read-only mode here"
                return enforced.protocol, (
                    f"read-only: the hypervisor itself refuses writes to {enforced.protocol} "
                    f"devices, while {why}"
                )
        measured = f" ({best.measured})" if best.measured else ""
        return best.protocol, f"the best device share that {vm.backend} offers{measured}"
    if not caps.network:
        raise UsageError(
            f"VM {share.vm!r} offers no share protocol that vmshare can use",
            hint="see `vmshare doctor` for what this backend and guest support",
        )
    name = caps.network[0]
    if caps.guest_os == "windows":
        return name, f"a Windows guest mounts {name} natively"
    why = caps.no_device_reason or f"{vm.backend} has no device share for this VM"
    measured = f" ({nfs.MEASURED})" if name == "nfs" and "smb" in caps.network else ""
    return name, f"{why}; {name} is the network share it supports{measured}"


def _enforced_by(devices: list[DeviceCapability]) -> str:
    enforced = [d.protocol for d in devices if d.readonly_enforced]
    return f"; use {enforced[0]} to enforce it" if enforced else ""


def _check_device_limits(
    share: ShareSpec, device: DeviceCapability, vm: VmFacts, asked: bool
) -> None:
    caps = vm.capabilities
    others = [d.protocol for d in caps.devices if d is not device] + caps.network
    unsafe = [ch for ch in device.unsafe_path_chars if ch in str(share.source)]
    if unsafe:
        raise UsageError(
            f"{device.protocol} cannot carry {' or '.join(repr(c) for c in unsafe)} in the host "
            f"path {share.source} ({device.unsafe_path_reason})",
            hint="rename the folder, or pass " + _either(others),
        )
    if share.readonly and asked and device.readonly_refused:
        enforced = next((d.protocol for d in caps.devices if d.readonly_enforced), None)
        auto = f"auto picks {enforced}, enforced by the hypervisor" if enforced else "see auto"
        raise UsageError(
            f"{device.readonly_refused}, and a read-only guest mount alone could be remounted "
            "read-write by root in the guest",
            hint=f"drop --protocol {device.protocol} ({auto}) or use " + " or ".join(caps.network),
        )


def _either(protocols: list[str]) -> str:
    """``--protocol a, --protocol b or --protocol c``."""
    options = [f"--protocol {p}" for p in protocols]
    return " or ".join([", ".join(options[:-1]), options[-1]]) if len(options) > 1 else options[0]


def network_protocols(spec: Spec, facts: Facts) -> set[str]:
    """The network protocols the spec's shares will use, to probe only those exports. A share
    whose choice fails is left to ``resolve``, which reports it in order."""
    chosen: set[str] = set()
    for share in spec.share:
        vm = facts.vms.get(share.vm)
        if vm is None or not vm.exists:
            continue
        try:
            protocol = choose_protocol(share, vm).protocol
        except UsageError:
            continue
        if protocol in NETWORK_PROTOCOLS and vm.capabilities.host_os != "windows":
            chosen.add(protocol)  # a Windows host's shares are its own: no local server
    return chosen
