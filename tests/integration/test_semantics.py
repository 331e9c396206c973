"""What the plan says about each protocol is what vmshare's own share of it does in the guest.

The POSIX semantics probe (tests/testbed/semantics.sh) runs as root on a share made by the real
CLI; the properties it finds broken must be exactly the ones the protocol's semantics text names.
And a host edit must reach a guest reader that never stops polling within a second (except on
SMB, whose text says so).
"""

from __future__ import annotations

import os

import pytest
from tests.testbed.fixtures import OWNER, FileServers, Guest, Vmshare
from tests.testbed.semantics import probe, visibility

from vmshare.protocols import nfs, smb
from vmshare.protocols.ninep import NINEP
from vmshare.protocols.virtiofs import VIRTIOFS

pytestmark = pytest.mark.integration

PROTOCOLS = ("virtiofs", "9p", "nfs", "smb")
TEXT = {
    "virtiofs": VIRTIOFS.semantics,
    "9p": NINEP.semantics,
    "nfs": nfs.SEMANTICS,
    "smb": smb.SEMANTICS,
}
# Every probe property that fails on vmshare's share of the protocol, with the words of the
# protocol's semantics text that state it. All other properties must pass.
DEVIATIONS = {
    "virtiofs": {
        "mknod_char": "device nodes",
        "mknod_block": "device nodes",
    },
    "9p": {
        "subsecond_mtime": "sub-second timestamps are lost",
        "symlink_times": "sub-second timestamps are lost",
        "setuid_cleared_on_write": "setuid survives a write by another user",
    },
    "nfs": {
        "permissions_enforced": "permission bits do not stop another guest user",
        "chown": "chown and device nodes are refused",
        "mknod_char": "chown and device nodes are refused",
        "mknod_block": "chown and device nodes are refused",
        "new_file_owner": "files are created as the owner",
        "unlinked_open_file": "an open file that is deleted keeps a .nfs name",
        "symlink_times": "a symlink's own times cannot be set",
    },
    "smb": {
        "chmod": "chmod and chown are ignored",
        "chown": "chmod and chown are ignored",
        "new_file_mode": "every file shows mode 0755",
        "new_file_owner": "the mount's uid/gid",
        "mkfifo": "no FIFOs, device nodes or sockets",
        "mknod_char": "no FIFOs, device nodes or sockets",
        "mknod_block": "no FIFOs, device nodes or sockets",
        "unix_socket": "no FIFOs, device nodes or sockets",
        "case_sensitive": "names are case-insensitive",
        "name_special_chars": "cannot hold \\",
        "setuid_cleared_on_write": "only the mount's uid and root may write",
        "unlinked_open_file": "an open file that is deleted keeps its name until closed",
    },
}


@pytest.fixture
def share(guest: Guest, vmshare: Vmshare, servers: FileServers, open_tmp):
    """add(protocol) -> (host dir, guest dir) of a fresh share made by the real CLI; a network
    share's folder belongs to a non-root user, as vmshare requires without --owner."""
    vmshare.env["VMSHARE_HOST_CONFIG"] = str(servers.host_config)

    def add(protocol: str, prefix: str) -> tuple:
        src = open_tmp / f"src-{protocol}"
        src.mkdir()
        if protocol in ("nfs", "smb"):
            os.chown(src, *OWNER)
        target = f"/mnt/{prefix}-{protocol}"
        vmshare("add", str(src), f"{guest.name}:{target}", "--protocol", protocol, "--restart",
                check=True)  # fmt: skip
        return src, target

    return add


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_semantics_text_is_what_the_share_does(guest: Guest, share, protocol):
    src, target = share(protocol, "sem")
    checks = probe(guest.dom, target)
    assert len(checks) >= 26, checks  # the probe ran to its end
    failing = {name: check.detail for name, check in checks.items() if not check.ok}
    expected = DEVIATIONS[protocol]
    assert set(failing) == set(expected), (
        f"{protocol}: the probe finds {sorted(failing)} broken, the text states "
        f"{sorted(expected)}; details: {failing}"
    )
    for phrase in set(expected.values()):
        assert phrase in TEXT[protocol], f"{protocol} semantics text does not say {phrase!r}"
    if protocol == "smb":  # "symlinks made in the guest are mfsymlinks files on the host"
        assert "mfsymlinks files on the host" in TEXT[protocol]
        assert guest.sh('ln -s hello.txt "$1/made-link"', target)[0] == 0
        made = src / "made-link"
        assert not made.is_symlink() and made.read_bytes().startswith(b"XSym\n")


# smb: no leases (oplocks = no) and cifs cache=loose with actimeo=1; test_network_shares.py
# reads every SMB file through a pipe, where cache=strict without a lease returned NULs on 6.1.
# Loose caching revalidates by time and size: a same-size rewrite in place can stay unseen (3 of
# 10 in 3 of 4 runs here), which smb's semantics text says; rewrites that resize are the claim.
@pytest.mark.parametrize("protocol", ["virtiofs", "9p", "nfs", "smb"])
def test_host_edits_reach_a_polling_guest_reader_within_a_second(guest: Guest, share, protocol):
    src, target = share(protocol, "vis")
    seen = visibility(guest.dom, src / "edited.txt", f"{target}/edited.txt", rewrites=20)
    if protocol == "smb":
        assert "same-size rewrite in place can stay unseen" in smb.SEMANTICS
        seen = seen.resized
    assert seen.p95 <= 1.0, f"{protocol}: host rewrites seen in the guest after {seen.summary()}"
