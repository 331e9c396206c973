#!/bin/sh
# The test bed's /sbin/mount.vboxsf (a stand-in for Guest Additions' helper): checks its argv
# as the real helper takes it -- mount.vboxsf [-w|-r] [-n] NAME MOUNTPOINT [-o OPTIONS] -- and
# the options it knows, then mounts the virtiofs device of the same name that the test bed
# hot-plugged into the domain for the VirtualBox folder (tests/testbed/vbox/bridge.py).
# busybox mount runs it only after its own mount(2) failed (no vboxsf in this kernel), and
# passes flag options (ro, nosuid...) as flags, not in -o.
log=/run/mount.vboxsf.log
echo "mount.vboxsf $*" >>"$log"
fail() { echo "mount.vboxsf: $*" >&2; echo "refused: $*" >>"$log"; exit 1; }
ro=
while [ $# -gt 0 ]; do
    case "$1" in
        -w) shift ;;
        -r) ro=1; shift ;;
        -n) shift ;;
        -*) fail "unknown option $1" ;;
        *) break ;;
    esac
done
[ $# -eq 2 ] || [ $# -eq 4 ] || fail "usage: mount.vboxsf [-w|-r] [-n] NAME MOUNTPOINT [-o OPTIONS]"
name=$1 target=$2
if [ $# -eq 4 ]; then
    [ "$3" = -o ] || fail "expected -o, got $3"
    old_ifs=$IFS IFS=,
    for opt in $4; do
        case "$opt" in
            ro) ro=1 ;;
            rw | _netdev | nofail | noauto | defaults) ;;
            uid=[0-9]* | gid=[0-9]* | ttl=[0-9]* | dmode=[0-7]* | fmode=[0-7]*) ;;
            dmask=[0-7]* | fmask=[0-7]* | umask=[0-7]* | iocharset=* | convertcp=*) ;;
            *) IFS=$old_ifs; fail "unknown option $opt" ;;
        esac
    done
    IFS=$old_ifs
fi
case "$name" in
    '' | *[!A-Za-z0-9._-]*) fail "bad shared folder name '$name'" ;;
esac
[ -d "$target" ] || fail "mount point $target does not exist"
exec mount -t virtiofs ${ro:+-o ro} "$name" "$target"
