"""virtio-fs: a vhost-user device served by virtiofsd; the most POSIX-complete share."""

from vmshare.protocols import DeviceProtocol

VIRTIOFS = DeviceProtocol(
    name="virtiofs",
    fstype="virtiofs",
    base_options=(),
    hotplug=True,
    needs_shared_memory=True,
    # QEMU 7.2's virtiofsd has no read-only mode: a readonly virtiofs share is read-only
    # only through the guest's mount options.
    readonly_at_device=False,
    # Measured on vmshare's own share: benchmarks/semantics.py, docs/semantics.md.
    semantics=(
        "POSIX semantics except device nodes: mknod of block and character devices fails "
        "(EPERM), because libvirt runs virtiofsd inside the VM's device cgroup"
    ),
)
