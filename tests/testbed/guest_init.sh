#!/bin/sh
# PID 1 of the vmshare test guest: a busybox initramfs built by tests/testbed/guest_image.py.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

log() { echo "testbed-init: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
exec </dev/console >/dev/console 2>&1
[ -e /var/run ] || ln -s /run /var/run

# busybox reboot/poweroff/halt signal PID 1 with TERM/USR2/USR1: honour them.
trap 'sync; reboot -f' TERM
trap 'sync; poweroff -f' USR2
trap 'sync; halt -f' USR1

for mod in $(cat /lib/testbed/modules); do
    modprobe "$mod" || log "modprobe $mod failed"
done
# Optional ones (e.g. aesni_intel, sha*_ssse3) fail on CPUs without those instructions.
for mod in $(cat /lib/testbed/modules.optional); do
    modprobe "$mod" 2>/dev/null
done
hostname testvm

# /dev/vda is the persistent ext4 "etc disk": seed it from the initramfs /etc on first boot,
# then mount it over /etc so that /etc (and /etc/fstab) survive reboots.
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /run/etcdisk
if mount -t ext4 /dev/vda /run/etcdisk; then
    if [ ! -e /run/etcdisk/.testbed-seeded ]; then
        cp -a /etc/. /run/etcdisk/ && touch /run/etcdisk/.testbed-seeded
        log "seeded /etc disk"
    fi
    umount /run/etcdisk
    mount -t ext4 /dev/vda /etc || log "cannot mount /dev/vda on /etc"
else
    log "no usable /dev/vda: /etc stays on the initramfs"
fi
[ -e /etc/fstab ] || : >/etc/fstab

ip link set lo up
# The optional second NIC (domain.py SSH_MAC, QEMU user networking with a hostfwd from the host's
# 127.0.0.1 to port 22) only carries ssh: a static address and no default route through it.
ssh_if=
for dir in /sys/class/net/*; do
    [ "$(cat "$dir/address" 2>/dev/null)" = 52:54:00:73:73:68 ] && ssh_if=${dir##*/}
done
if [ -e /sys/class/net/eth0 ] && [ "$ssh_if" != eth0 ]; then
    ip link set eth0 up
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
fi
if [ -n "$ssh_if" ]; then
    ip link set "$ssh_if" up
    ip addr add 10.0.3.15/24 dev "$ssh_if"
fi

# dropbear: root by public key only. Its host key and root's authorized_keys live on the
# persistent /etc disk (/root is on the initramfs), so both survive a reboot.
mkdir -p /etc/dropbear/root-ssh
chmod 700 /etc/dropbear/root-ssh
ln -sfn /etc/dropbear/root-ssh /root/.ssh
host_key=/etc/dropbear/dropbear_ed25519_host_key
ssh_loop() {
    # In the background: dropbearkey waits for the kernel's randomness (seconds under TCG).
    # sync: a domain destroyed right after boot must keep the key its known_hosts entry names.
    if [ ! -s "$host_key" ]; then
        rm -f "$host_key.new"
        dropbearkey -t ed25519 -f "$host_key.new" >/dev/null && mv "$host_key.new" "$host_key" &&
            sync || log "dropbearkey failed"
    fi
    while :; do
        dropbear -F -E -s -m -r "$host_key" -p 22 2>>/run/dropbear.log
        log "dropbear exited $?, restarting"
        sleep 1
    done
}
ssh_loop </dev/null &

# The root filesystem is the initramfs, so mount points named in /etc/fstab do not survive a
# reboot: recreate them before mount -a. busybox 1.35 mount drops "nofail" from the options it
# passes to the kernel, but nofail only silences ENOENT: any other failure (a missing virtiofs
# tag gives EINVAL) is printed and counted in the exit status, so init ignores that status.
while read -r spec file vfstype rest || [ -n "$spec" ]; do
    case "$spec" in '' | '#'*) continue ;; esac
    [ "$vfstype" = swap ] && continue
    file=$(printf '%b' "$file")
    [ -d "$file" ] || mkdir -p "$file"
done </etc/fstab
# busybox mount -a mounts nfs4 by itself, but for cifs it calls /sbin/mount.cifs only after its
# own mount(2) failed (no password: credentials= is the helper's) and then drops the flag
# options (ro, nosuid, ...), so a "ro" cifs line would end up rw: mount cifs lines directly.
# (busybox applies the "no" prefix to the whole list of types.)
mount -a -t nocifs,smb3 || log "mount -a exited $?"
while read -r spec file vfstype opts rest || [ -n "$spec" ]; do
    case "$spec" in '' | '#'*) continue ;; esac
    case "$vfstype" in cifs | smb3) ;; *) continue ;; esac
    case ",$opts," in *,noauto,*) continue ;; esac
    spec=$(printf '%b' "$spec")
    file=$(printf '%b' "$file")
    "mount.$vfstype" "$spec" "$file" -o "${opts:-defaults}" </dev/null ||
        log "mount.$vfstype $file exited $?"
done </etc/fstab

agent_loop() {
    while :; do
        port=
        for dir in /sys/class/virtio-ports/*; do
            [ "$(cat "$dir/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/${dir##*/}
        done
        if [ -n "$port" ] && [ -c "$port" ]; then
            qemu-ga -m virtio-serial -p "$port" -l /run/qemu-ga.log
            log "qemu-ga exited $?, restarting"
        fi
        sleep 1
    done
}
agent_loop </dev/null &

echo VMSHARE-GUEST-READY
# Stay alive as PID 1; waiting also reaps orphaned children.
while :; do
    sleep 3600 &
    wait $!
done
