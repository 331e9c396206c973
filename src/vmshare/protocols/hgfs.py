"""HGFS: VMware Workstation/Fusion shared folders, mounted in a Linux guest by open-vm-tools'
FUSE client ``vmhgfs-fuse .host:/NAME TARGET -o ...``.

The fstab type ``fuse.vmhgfs-fuse`` makes mount(8) hand the line to the same program after a
reboot. ``subtype`` and ``fsname`` are libfuse's own options: with them /proc/mounts shows
``.host:/NAME`` as the source and ``fuse.vmhgfs-fuse`` as the type, which is how vmshare finds its
mount again. HGFS keeps no owners of its own: uid=/gid= say whose the files look in the guest.
"""

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
