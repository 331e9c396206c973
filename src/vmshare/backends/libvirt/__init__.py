"""QEMU/KVM through libvirt: the backend, its domain XML and its guest-agent channel."""
