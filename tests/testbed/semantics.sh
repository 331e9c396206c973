#!/bin/sh
# vmshare's POSIX semantics probe: run as root in the test guest (busybox sh, no python) with the
# directory of a mounted share as $1. Prints one line per named property:
#     NAME: pass|fail DETAIL
# and nothing else on stdout. Everything it makes lives in $1/.vmshare-probe.PID and goes again.
#
# A property is checked by doing it, the way pjdfstest would, with busybox's applets: what a
# check cannot do (no xattr tool in busybox) is not listed rather than reported as passing.
set -u
share=${1:?usage: semantics.sh DIR}
work="$share/.vmshare-probe.$$"
local_dir=/tmp/.vmshare-probe.$$
umask 022
rm -rf "$work" "$local_dir"
mkdir "$work" || { echo "setup: fail cannot mkdir $work"; exit 2; }
mkdir -p "$local_dir"
cd "$work" || exit 2

# A user that exists only inside this probe (a private /etc/passwd in a mount namespace), for
# the checks that need a process that is not root and not the file's owner.
PROBE_UID=4242
printf 'root:x:0:0::/root:/bin/sh\nprobe:x:%s:%s::/:/bin/sh\n' "$PROBE_UID" "$PROBE_UID" \
    >"$local_dir/passwd"
as_probe() { # as_probe SCRIPT ARGS...: sh -c SCRIPT as uid/gid PROBE_UID
    script=$1
    shift
    unshare -m sh -c 'mount --bind "$1" /etc/passwd && shift && exec su probe -s /bin/sh -c "$@"' \
        sh "$local_dir/passwd" "$script" sh "$@"
}

n=0
check() { # check NAME FUNCTION: run FUNCTION in a fresh directory, report its status and output
    n=$((n + 1))
    mkdir "$work/$n" && cd "$work/$n" || { echo "$1: fail cannot make a directory"; return; }
    detail=$("$2" 2>&1)
    status=$?
    detail=$(printf '%s' "$detail" | tr '\n' ' ' | cut -c1-160)
    if [ "$status" -eq 0 ]; then echo "$1: pass${detail:+ $detail}"; else echo "$1: fail $detail"; fi
    cd "$work" || exit 2
}
ftype() { stat -c %F "$1"; }
# The reference timestamp: a file on the guest's tmpfs with a nanosecond fraction.
ref="$local_dir/ref"
: >"$ref"
ref_time() { stat -c %y "$ref"; }

regular_file() {
    printf 'hello\n' >f && [ "$(cat f)" = hello ] && [ "$(ftype f)" = "regular file" ]
}
exclusive_create() { # O_CREAT|O_EXCL (the shell's noclobber)
    : >f
    if (set -C && : >f) 2>/dev/null; then echo "O_EXCL opened an existing file"; return 1; fi
    (set -C && : >g) || return 1
}
append() { # O_APPEND
    printf a >f && printf b >>f && printf c >>f && [ "$(cat f)" = abc ] || {
        echo "got $(cat f)"
        return 1
    }
}
truncate_shrink_grow() {
    printf 0123456789 >f && truncate -s 4 f && [ "$(cat f)" = 0123 ] &&
        truncate -s 100 f && [ "$(stat -c %s f)" = 100 ] || {
        echo "size $(stat -c %s f)"
        return 1
    }
}
sparse_5g() { truncate -s 5G f && [ "$(stat -c %s f)" = 5368709120 ]; }
rename_over_file() {
    printf old >a && printf new >b && mv -f b a && [ "$(cat a)" = new ] && [ ! -e b ]
}
rename_directory() {
    mkdir d1 && printf x >d1/x && mv d1 d2 && [ "$(cat d2/x)" = x ] && [ ! -e d1 ]
}
name_255_bytes() {
    name=$(printf '%0255d' 0)
    : >"$name" && [ -e "$name" ] && [ "$(ls)" = "$name" ]
}
name_special_chars() { # bytes a Linux name may hold and a Windows name may not
    refused=
    for name in 'a:b' 'a\b' 'a*b' 'a?b' 'a"b' 'a<b>' 'a|b' 'trailing.'; do
        if (: >"$name") 2>/dev/null && [ "$(ls)" = "$name" ]; then
            rm -f "$name"
        else
            refused="$refused $name"
            rm -f ./*
        fi
    done
    [ -z "$refused" ] || {
        echo "refused or renamed:$refused"
        return 1
    }
}
case_sensitive() {
    printf 1 >Aa && printf 2 >aA && [ "$(cat Aa)" = 1 ] && [ "$(ls | wc -l)" = 2 ] || {
        echo "Aa and aA are one file"
        return 1
    }
}
hard_link() {
    printf x >f && ln f g && [ "$(stat -c %h f)" = 2 ] && [ "$(stat -c %i f)" = "$(stat -c %i g)" ] ||
        {
            echo "nlink $(stat -c %h f 2>&1)"
            return 1
        }
}
symlink() {
    printf x >target && ln -s target l && [ "$(readlink l)" = target ] &&
        [ "$(ftype l)" = "symbolic link" ] && [ "$(cat l)" = x ]
}
same_time() { # same_time FILE: FILE's mtime is the reference's, to the nanosecond or
    # to the 100 ns of an NT timestamp (said in the detail); else the difference is the detail
    got=$(stat -c %y "$1")
    want=$(ref_time)
    [ "$got" = "$want" ] && return 0
    if [ "$(echo "$got" | cut -c1-27)" = "$(echo "$want" | cut -c1-27)" ]; then
        echo "kept to 100 ns"
        return 0
    fi
    echo "stored $got, wanted $want"
    return 1
}
symlink_times() { # utimensat(AT_SYMLINK_NOFOLLOW) sets the link's own time
    printf x >target && ln -s target l && touch -h -r "$ref" l && same_time l
}
subsecond_mtime() { # utimensat with a nanosecond fraction is kept
    printf x >f && touch -r "$ref" f && same_time f
}
mtime_on_write() {
    printf x >f && touch -d "2001-01-01 00:00:00" f && printf y >>f &&
        [ "$(stat -c %Y f)" -gt 978307200 ] || {
        echo "mtime $(stat -c %y f)"
        return 1
    }
}
mkfifo_() { mkfifo p && [ "$(ftype p)" = fifo ]; }
mknod_char() { mknod c c 1 3 && [ "$(ftype c)" = "character special file" ] && [ "$(stat -c %t:%T c)" = 1:3 ]; }
mknod_block() { mknod b b 7 0 && [ "$(ftype b)" = "block special file" ] && [ "$(stat -c %t:%T b)" = 7:0 ]; }
unix_socket() { # bind(2) of an AF_UNIX socket: qemu-ga's unix-listen transport does one
    qemu-ga -m unix-listen -p "$PWD/s" -f "$local_dir/ga.pid" -t "$local_dir" \
        -l "$local_dir/ga.log" </dev/null >/dev/null 2>&1 &
    pid=$!
    i=0
    while [ ! -S s ] && [ "$i" -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
        usleep 100000
        i=$((i + 1))
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ -S s ] || {
        tail -n 2 "$local_dir/ga.log" 2>/dev/null
        return 1
    }
}
chmod_() {
    printf x >f && chmod 0640 f && [ "$(stat -c %a f)" = 640 ] && chmod 4755 f &&
        [ "$(stat -c %a f)" = 4755 ] || {
        echo "mode $(stat -c %a f)"
        return 1
    }
}
chown_() {
    printf x >f && chown 1234:5678 f && [ "$(stat -c %u:%g f)" = 1234:5678 ] || {
        echo "owner $(stat -c %u:%g f)"
        return 1
    }
}
new_file_owner() { # the creator owns what it makes (root here)
    printf x >f && [ "$(stat -c %u:%g f)" = 0:0 ] || {
        echo "owner $(stat -c %u:%g f)"
        return 1
    }
}
new_file_mode() { # umask 022: files 644, directories 755
    printf x >f && mkdir d && [ "$(stat -c %a f)/$(stat -c %a d)" = 644/755 ] || {
        echo "file/dir $(stat -c %a f)/$(stat -c %a d)"
        return 1
    }
}
permissions_enforced() { # another user cannot write a 0644 file it does not own
    printf x >f && chmod 0644 f && chmod 0777 . || return 1
    if as_probe 'printf y >>"$1"' f 2>/dev/null; then
        echo "uid $PROBE_UID wrote a 0644 file of $(stat -c %u f)"
        return 1
    fi
}
setuid_cleared_on_write() { # a write by a user without CAP_FSETID clears S_ISUID
    printf x >f && chmod 4777 f && chmod 0777 . || return 1
    as_probe 'printf y >>"$1"' f || {
        echo "uid $PROBE_UID cannot write a 4777 file"
        return 1
    }
    [ "$(stat -c %a f)" = 777 ] || {
        echo "mode after write $(stat -c %a f)"
        return 1
    }
}
unlinked_open_file() { # an open file outlives its name: readable, nlink 0, no name left
    printf data >f || return 1
    # (into a file, under a deadline: once, over SMB, this inner shell hung writing to a pipe).
    # busybox's timeout leaves a watcher process behind for up to a second, in its cwd: start it
    # from / so that it does not keep the share busy when vmshare unmounts it right after.
    (cd / && timeout 60 sh -c \
        'cd "$1" && exec 3<f && rm f && stat -L -c %h /proc/$$/fd/3 && cat <&3 && echo && ls -A' \
        sh "$OLDPWD") >"$local_dir/unlinked" 2>&1
    out=$(cat "$local_dir/unlinked")
    [ "$out" = "0
data" ] || {
        echo "nlink/content/names: $out"
        return 1
    }
}

check regular_file regular_file
check exclusive_create exclusive_create
check append append
check truncate truncate_shrink_grow
check sparse_5g sparse_5g
check rename_over_file rename_over_file
check rename_directory rename_directory
check name_255_bytes name_255_bytes
check name_special_chars name_special_chars
check case_sensitive case_sensitive
check hard_link hard_link
check symlink symlink
check symlink_times symlink_times
check subsecond_mtime subsecond_mtime
check mtime_on_write mtime_on_write
check mkfifo mkfifo_
check mknod_char mknod_char
check mknod_block mknod_block
check unix_socket unix_socket
check chmod chmod_
check chown chown_
check new_file_owner new_file_owner
check new_file_mode new_file_mode
check permissions_enforced permissions_enforced
check setuid_cleared_on_write setuid_cleared_on_write
check unlinked_open_file unlinked_open_file

cd /
rm -rf "$work" "$local_dir"
