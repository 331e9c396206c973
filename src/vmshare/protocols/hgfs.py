"""HGFS: VMware Workstation/Fusion shared folders, mounted in a Linux guest by open-vm-tools'
FUSE client ``vmhgfs-fuse .host:/NAME TARGET -o ...``, or, in a guest that has only the old
``vmhgfs`` kernel module (open-vm-tools before 10, kernels before 4.0), by its mount program
``mount.vmhgfs .host:/NAME TARGET -o ...`` with fstab type ``vmhgfs``.

The fstab type ``fuse.vmhgfs-fuse`` makes mount(8) hand the line to the same program after a
reboot. ``subtype`` and ``fsname`` are libfuse's own options: with them /proc/mounts shows
``.host:/NAME`` as the source and ``fuse.vmhgfs-fuse`` as the type, which is how vmshare finds its
mount again. HGFS keeps no owners of its own: uid=/gid= say whose the files look in the guest.
"""

from vmshare.errors import UsageError
from vmshare.facts import GuestFacts
from vmshare.protocols import DeviceProtocol

HGFS_PROGRAM = "vmhgfs-fuse"
HGFS_KERNEL = "vmhgfs"  # the old kernel module's filesystem type, tried when FUSE fails

HGFS = DeviceProtocol(
    name="hgfs",
    fstype=f"fuse.{HGFS_PROGRAM}",
    base_options=("allow_other", f"subtype={HGFS_PROGRAM}"),
    semantics=(
        "HGFS semantics: every file shows the mount's uid/gid (ownership changes are not kept), "
        "no device nodes, FIFOs or sockets; read-only folders are enforced by VMware"
    ),
    source_prefix=".host:/",
    source_option="fsname",
    owner_options=True,
)

# The kernel module's client: its file system takes the options the module knows (no FUSE ones),
# and shows ``.host:/NAME`` as the source by itself.
HGFS_KERNEL_MOUNT = DeviceProtocol(
    name="hgfs",
    fstype=HGFS_KERNEL,
    base_options=(),
    semantics=HGFS.semantics,
    source_prefix=".host:/",
    owner_options=True,
)


def guest_client(guest: GuestFacts, vm: str) -> tuple[DeviceProtocol, str | None]:
    """How this guest mounts HGFS, and why when it is not vmhgfs-fuse. A guest not reached yet
    (the VM is off) is taken to have vmhgfs-fuse, as every open-vm-tools since 10 brings it."""
    clients = guest.hgfs_clients
    if not guest.reachable or HGFS_PROGRAM in clients:
        return HGFS, None
    if HGFS_KERNEL in clients:
        reason = (
            f"the guest has no {HGFS_PROGRAM} (open-vm-tools before 10) but the {HGFS_KERNEL} "
            f"kernel module's mount.{HGFS_KERNEL}: the kernel client mounts the folder"
        )
        return HGFS_KERNEL_MOUNT, reason
    raise UsageError(
        f"VM {vm!r} has no HGFS client: neither {HGFS_PROGRAM} nor the {HGFS_KERNEL} kernel "
        f"module's mount.{HGFS_KERNEL}",
        hint=f"install open-vm-tools in the guest (it brings {HGFS_PROGRAM}), or use "
        "--protocol nfs or smb",
    )
