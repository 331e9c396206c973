"""9p (virtio-9p): QEMU serves the directory itself; slower, but enforces read-only."""

from vmshare.protocols import DeviceProtocol

NINEP = DeviceProtocol(
    name="9p",
    fstype="9p",
    base_options=("trans=virtio", "version=9p2000.L", "msize=512000"),
    # Measured on vmshare's own share: benchmarks/semantics.py, docs/semantics.md.
    semantics=(
        "near-POSIX with security_model=mapped-xattr: sub-second timestamps are lost (times "
        "are kept to the second) and setuid survives a write by another user"
    ),
)
