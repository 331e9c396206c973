"""Names vmshare gives VirtualBox objects: shared folders and the extradata keys beside them.

A folder's name is the share's device tag (``vmshare-`` and hex digits from the share's
VM:TARGET key), never the user's string: VirtualBox refuses names with spaces, tabs or newlines,
and a name is also what the guest passes to ``mount -t vboxsf``.
"""

from __future__ import annotations

import re

from vmshare.errors import UsageError

SYMLINKS_KEY = "VBoxInternal2/SharedFoldersEnableSymlinksCreate/{name}"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def folder_name(tag: str) -> str:
    """The shared folder's name for device ``tag``; a tag that breaks VirtualBox's rules (or
    that could read as an option) is refused, never passed on."""
    if not _SAFE.fullmatch(tag):
        raise UsageError(
            f"{tag!r} cannot name a VirtualBox shared folder (letters, digits, '.', '_', '-' only)",
            hint="vmshare derives folder names from the share itself: report this",
        )
    return tag


def symlinks_key(name: str) -> str:
    return SYMLINKS_KEY.format(name=folder_name(name))
