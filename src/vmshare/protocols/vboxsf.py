"""vboxsf: VirtualBox shared folders, served by VirtualBox and mounted through Guest Additions
(``mount -t vboxsf -o uid=,gid=,_netdev NAME TARGET``; the mainline kernel driver of Linux 5.6+
without Guest Additions' mount.vboxsf mounts it as ``mount -cit vboxsf NAME TARGET``)."""

from vmshare.protocols import DeviceProtocol

VBOXSF = DeviceProtocol(
    name="vboxsf",
    fstype="vboxsf",
    # every file shows as owned by uid/gid (0 unless -o uid=,gid= says otherwise); _netdev: the
    # folder is there only once Guest Additions run, so boot mounts it late
    base_options=("uid=0", "gid=0", "_netdev"),
    # VirtualBox's documented behaviour; not measured here (no VirtualBox on the test bed)
    semantics=(
        "not POSIX: ownership and modes are fixed by the mount's uid/gid/fmode/dmode (chown and "
        "chmod do not persist), no device nodes, fifos or sockets, and symlinks only when "
        "symlink creation is allowed for the folder (documented by VirtualBox, not measured)"
    ),
)
