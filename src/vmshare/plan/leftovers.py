"""Leftovers: objects that carry vmshare's names (device tags, export and fstab entry ids, VM
records) that no journal explains, and the steps that take them away.

One finder per place they live: ``vm_leftovers`` (the guest's mounts, fstab and credentials
files; the VM's devices and records; a Windows host's SMB shares, which its backend reports with
the VM) and ``export_leftovers`` (the host's NFS and Samba configs). ``remove`` of a share with no
record asks both about one tag; ``prune`` about every tag this state does not know. The steps
have no undo: a leftover is gone for good, and a rerun finishes what a failure left.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from vmshare.facts import VmFacts
from vmshare.formats import fstab
from vmshare.plan.device import ALL_SCOPES
from vmshare.plan.network import HostServers
from vmshare.plan.step import Layer, Step
from vmshare.protocols import TAG_LENGTH, TAG_PREFIX, smb

# what mount_tag() gives: a tag inside a mount source ("vmshare-…", ".host:/vmshare-…",
# "10.0.2.2:/vmshare/vmshare-…", "//host/vmshare-…")
TAG = re.compile(re.escape(TAG_PREFIX) + f"[0-9a-f]{{{TAG_LENGTH - len(TAG_PREFIX)}}}(?![0-9a-z])")

Wanted = Callable[[str], bool]  # whether a tag's objects are leftovers to take away
KeyOf = Callable[[str], str]  # the share key a leftover's steps are filed under


def is_tag(name: str) -> bool:
    """Whether ``name`` is a tag mount_tag() could have made (never a user's device name)."""
    return TAG.fullmatch(name) is not None


def _tags_in(text: str) -> set[str]:
    return set(TAG.findall(text))


def fstab_targets(vm: VmFacts) -> dict[str, fstab.MountEntry]:
    """vmshare's fstab entries in the guest, parsed: entry id -> entry."""
    found = {}
    for tag, line in vm.guest.fstab_entries.items():
        entries = fstab.parse_table(line)
        if entries:
            found[tag] = entries[0]
    return found


def guest_targets(vm: VmFacts, wanted: Wanted) -> dict[str, str]:
    """The guest paths of the wanted tags' shares, as their fstab lines or mounts say."""
    targets = {tag: e.target for tag, e in fstab_targets(vm).items() if wanted(tag)}
    for target, mounted in vm.guest.mounts.items():
        for tag in _tags_in(mounted.source):
            if wanted(tag):
                targets.setdefault(tag, target)
    return targets


def _mounted_tags(vm: VmFacts, wanted: Wanted) -> list[tuple[str, str]]:
    """(target, tag) of the guest's mounts of wanted tags, innermost first: a mount whose source
    holds the tag (devices, ganesha, Samba), or the mount its fstab line describes (kernel nfsd
    exports a share by its host path)."""
    lines = fstab_targets(vm)
    found = []
    for target, mounted in vm.guest.mounts.items():
        tags = {t for t in _tags_in(mounted.source) if wanted(t)}
        tags |= {
            tag
            for tag, entry in lines.items()
            if wanted(tag) and entry.target == target and entry.source == mounted.source
        }
        found += [(target, tag) for tag in sorted(tags)[:1]]
    return sorted(found, key=lambda item: -len(item[0]))


def vm_leftovers(
    vm_name: str,
    vm: VmFacts,
    wanted: Wanted,
    key_of: KeyOf,
    *,
    credentials_of: Iterable[str] = (),
    host_settings: dict[str, Any] | None = None,
) -> list[Step]:
    """The steps that take away the wanted tags' objects in one VM: guest first (unmount, fstab
    line, SMB credentials file), then its devices and records, then a Windows host's SMB shares
    (``host_settings``: the account settings its ``smb_unshare`` takes; None: not looked at).
    ``credentials_of``: tags whose credentials file goes even with nothing else found here."""

    def step(layer: Layer, action: str, of: str, summary: str, **args: object) -> Step:
        return Step(
            share=key_of(of), layer=layer, action=action, vm=vm_name, args=args, summary=summary
        )

    guest: list[Step] = []
    touched: set[str] = set(credentials_of)
    for target, tag in _mounted_tags(vm, wanted):
        guest.append(step("guest", "unmount", tag, f"unmount {target} ({tag})", target=target))
        touched.add(tag)
    for tag, entry in sorted(fstab_targets(vm).items()):
        if wanted(tag):
            summary = f"remove {entry.target} from /etc/fstab ({tag})"
            guest.append(step("guest", "fstab_remove", tag, summary, entry_id=tag))
            touched.add(tag)
    hypervisor: list[Step] = []
    devices = {**vm.running_devices, **vm.persistent_devices}
    for tag, device in sorted(devices.items()):
        if is_tag(tag) and wanted(tag):
            summary = f"detach device {tag} (of {device.source})"
            hypervisor.append(
                step("hypervisor", "detach_share", tag, summary, tag=tag, scopes=ALL_SCOPES)
            )
            touched.add(tag)
    for tag in sorted(vm.records):
        if wanted(tag):
            where = vm.capabilities.record_where.format(tag=tag)
            summary = f"forget the share's record on VM {vm_name} ({where})"
            hypervisor.append(step("hypervisor", "forget_share", tag, summary, tag=tag))
            touched.add(tag)
    host: list[Step] = []
    if host_settings is not None:
        for tag, folder in sorted(vm.host_shares.items()):
            if wanted(tag):
                summary = f"remove the Windows host's SMB share {tag} (of {folder})"
                host.append(
                    step("host", "smb_unshare", tag, summary, settings=host_settings, entry_id=tag)
                )
    if vm.guest.reachable:
        for tag in sorted(touched):
            path = smb.credentials_path(tag)
            guest.append(step("guest", "remove_file", tag, f"remove {path} if present", path=path))
    return [*guest, *hypervisor, *host]


def export_leftovers(
    exports: dict[str, dict[str, str]],
    servers: HostServers,
    wanted: Wanted,
    key_of: KeyOf,
    vm_of: KeyOf,
) -> list[Step]:
    """The steps that take the wanted tags' entries out of this machine's NFS and Samba configs
    (``exports``: protocol -> vmshare's entries, as ``HostServers.entries`` reads them)."""
    nfs_settings = servers.settings.nfs.model_dump(mode="json")
    smb_settings = servers.settings.smb.model_dump(mode="json")
    unexports = {
        "nfs": ("nfs_unexport", "NFS export", {"exporter": servers.nfs.name}, nfs_settings),
        "smb": ("smb_unshare", "Samba share", {}, smb_settings),
    }
    steps = []
    for protocol, (action, what, extra, settings) in unexports.items():
        for tag in sorted(exports.get(protocol, {})):
            if not wanted(tag):
                continue
            args = {**extra, "settings": settings, "entry_id": tag}
            steps.append(
                Step(
                    share=key_of(tag),
                    layer="host",
                    action=action,
                    vm=vm_of(tag),
                    args=args,
                    summary=f"remove the {what} {tag}",
                )
            )
    return steps
