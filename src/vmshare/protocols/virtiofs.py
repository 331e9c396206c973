"""virtio-fs: a vhost-user device served by virtiofsd; the most POSIX-complete share."""

from vmshare.protocols import DeviceProtocol

VIRTIOFS = DeviceProtocol(
    name="virtiofs",
    fstype="virtiofs",
    base_options=(),
    # Measured on vmshare's own share: benchmarks/semantics.py, docs/semantics.md.
    semantics=(
        "POSIX semantics except device nodes: mknod of block and character devices fails "
        "(EPERM), because libvirt runs virtiofsd inside the VM's device cgroup"
    ),
)
