"""Share protocols: how a host directory reaches the guest, and how the guest mounts it.

Each device protocol module defines one ``DeviceProtocol``: its guest mount and the semantics of
the share. What a hypervisor can do with it (hot-plug, read-only, prerequisites) is the backend's
to say, in the VM's capabilities. Network protocols (nfs, smb) add a host exporter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from vmshare.errors import UsageError

# virtio-fs tags are at most 36 bytes and 9p mount tags at most 31 in older guests: stay below both.
TAG_PREFIX = "vmshare-"
TAG_LENGTH = 24


def mount_tag(share_key: str) -> str:
    """A deterministic device tag for a share (``VM:TARGET``), safe in XML, fstab and argv."""
    digest = hashlib.sha256(share_key.encode("utf-8")).hexdigest()
    return TAG_PREFIX + digest[: TAG_LENGTH - len(TAG_PREFIX)]


@dataclass(frozen=True)
class DeviceProtocol:
    name: str
    fstype: str
    base_options: tuple[str, ...]
    semantics: str  # what the user should know about the share's POSIX behaviour
    # the guest mounts ``source_prefix + tag`` (hgfs: ".host:/NAME"; virtio devices: the tag)
    source_prefix: str = ""
    # an option that names the mount source, so /proc/mounts shows it (FUSE: "fsname")
    source_option: str = ""
    # the mount takes the files' owner as uid=/gid= options (hgfs shows host files as one owner)
    owner_options: bool = False

    def source(self, tag: str) -> str:
        return self.source_prefix + tag

    def mount_options(
        self,
        *,
        readonly: bool,
        extra: list[str],
        source: str = "",
        owner: tuple[int, int] | None = None,
    ) -> list[str]:
        options = ["ro" if readonly else "rw", *self.base_options]
        if self.source_option and source:
            options.append(f"{self.source_option}={source}")
        if self.owner_options and owner is not None:
            options += [f"uid={owner[0]}", f"gid={owner[1]}"]
        return with_extras(options, extra)


def with_extras(options: list[str], extra: list[str]) -> list[str]:
    """Protocol options followed by the user's, without repeats; the user's ro/rw never wins."""
    return [*options, *(o for o in extra if o not in options and o not in ("ro", "rw"))]


def device_protocol(name: str) -> DeviceProtocol:
    from vmshare.protocols.hgfs import HGFS
    from vmshare.protocols.ninep import NINEP
    from vmshare.protocols.vboxsf import VBOXSF
    from vmshare.protocols.virtiofs import VIRTIOFS

    known = {p.name: p for p in (VIRTIOFS, NINEP, HGFS, VBOXSF)}
    if name not in known:
        raise UsageError(
            f"protocol {name!r} is not a device protocol", hint=f"use one of: {', '.join(known)}"
        )
    return known[name]
