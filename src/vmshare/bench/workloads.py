"""The benchmark's guest script and the parsing of its output. Pure: no I/O here.

``SCRIPT`` is fixed text holding every workload as a shell function; ``argv(WORKLOAD, *args)``
runs one as ``sh -c SCRIPT sh WORKLOAD ARGS...`` through a guest channel (values arrive only as
positional parameters). Each workload times itself with the guest's own clock, so channel round
trips are never part of a figure. Only tools that both a
busybox guest and a normal Linux guest have are used: sh builtins, dd, tar, find, xargs, stat,
ls, rm, mkdir, mktemp, sleep.

A script prints one line per figure, ``T NAME NANOSECONDS``, and facts as ``I KEY VALUE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The workloads: the names ``argv`` takes, with what their arguments are.

# $1: the work dir (inside the bench dir). Each figure is timed around one phase only.
SEQ_WRITE = "write"

# Run after the host dropped its own cache of the file (when it can): the guest's goes here.
SEQ_READ = "read"

# create, stat (ls -l: one lstat per file) and delete of $2 empty files, each phase timed.
METADATA = "meta"

# A tree of $2 top dirs x $3 subdirs x $4 files; walked (ls -lR: every entry listed and lstat'ed)
# after dropping the guest's caches, then again warm.
TREE = "tree"

# A source tarball of $3 dirs x $4 small text files, made (untimed) in the guest-local dir $2.
MAKE_TARBALL = "tarball"

# Unpack the tarball $2 into $1/dev, then a `git status`-like stat of every file.
DEV = "dev"

# Makes the bench dir inside $1, after checking it is a writable directory: prints its path.
PREPARE = "prepare"
PREPARE_CODES = {3: "not a directory in the guest", 4: "not writable (a read-only share?)"}

# Removes a bench dir made by PREPARE (refusing any other path).
CLEANUP = "cleanup"

# The host-to-guest visibility poller; see visibility.py for the method. $1 the polled file,
# $2 the ack file, $3 samples, $4 polls before a sample counts as unseen, $5 a guest-local
# stop file. Content is "s<N>e" and padding; each value seen is acked as "s<N>e". Then it
# times ack writes (guest clock).
POLLER = "poll"

# The guest clock, in nanoseconds: /proc/timer_list's "now at N nsecs" is CLOCK_MONOTONIC with
# ns resolution, read by a builtin loop (busybox date has no %N); else GNU date's %N; else
# /proc/uptime (10 ms). ``clock_name`` says which one a run used. Then one function per
# workload (w_NAME), each timing one phase only, and the dispatch on $1.
SCRIPT = r"""if [ -r /proc/timer_list ] && grep -q '^now at' /proc/timer_list 2>/dev/null; then
    clock_name=timer_list
    now() {
        while read -r a b c d; do
            if [ "$a $b" = "now at" ]; then echo "$c"; return; fi
        done < /proc/timer_list
    }
elif date +%s%N 2>/dev/null | grep -q '^[0-9]*$'; then
    clock_name=date_ns
    now() { date +%s%N; }
else
    clock_name=uptime
    now() {
        read -r up rest < /proc/uptime; c=${up#*.}; c=${c#0}
        echo $(( ${up%.*} * 1000000000 + c * 10000000 ))
    }
fi
t() { echo "T $1 $(( $3 - $2 ))"; }
drop() {
    sync
    if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then echo "I guest_caches dropped"
    else echo "I guest_caches kept"; fi
}
w_write() {
    d=$1 mib=$2
    rm -f "$d/seq.bin"; drop
    a=$(now); dd if=/dev/zero of="$d/seq.bin" bs=1M count="$mib" conv=fsync 2>/dev/null || exit 11
    b=$(now); t write "$a" "$b"
}
w_read() {
    d=$1
    drop
    a=$(now); dd if="$d/seq.bin" of=/dev/null bs=1M 2>/dev/null || exit 12
    b=$(now); t read "$a" "$b"
    rm -f "$d/seq.bin"
}
w_meta() {
    d=$1/meta n=$2
    rm -rf "$d"; mkdir "$d" || exit 13
    a=$(now); i=0; while [ $i -lt "$n" ]; do : > "$d/f$i" || exit 14; i=$((i+1)); done
    b=$(now); t create "$a" "$b"
    a=$(now); ls -l "$d" > /dev/null || exit 15
    b=$(now); t stat "$a" "$b"
    a=$(now); rm -rf "$d" || exit 16
    b=$(now); t delete "$a" "$b"
}
w_tree() {
    d=$1/tree
    rm -rf "$d"; mkdir "$d" || exit 17
    i=0; while [ $i -lt "$2" ]; do
        j=0; while [ $j -lt "$3" ]; do
            mkdir -p "$d/d$i/s$j" || exit 18
            k=0; while [ $k -lt "$4" ]; do echo "$i $j $k" > "$d/d$i/s$j/f$k.txt"; k=$((k+1)); done
            j=$((j+1))
        done
        i=$((i+1))
    done
    drop
    a=$(now); ls -lR "$d" > /dev/null || exit 19
    b=$(now); t walk_cold "$a" "$b"
    a=$(now); ls -lR "$d" > /dev/null || exit 19
    b=$(now); t walk_warm "$a" "$b"
    rm -rf "$d"
}
w_tarball() {
    s=$1/src out=$2
    rm -rf "$s"; mkdir -p "$s" || exit 20
    i=0; while [ $i -lt "$3" ]; do
        mkdir "$s/pkg$i" || exit 20
        k=0; while [ $k -lt "$4" ]; do
            printf 'int f%s_%s(void) { return %s; }\n' "$i" "$k" "$k" > "$s/pkg$i/m$k.c"; k=$((k+1))
        done
        i=$((i+1))
    done
    (cd "$1" && tar cf "$out" src) || exit 21
    rm -rf "$s"
}
w_dev() {
    d=$1/dev
    rm -rf "$d"; mkdir "$d" || exit 22
    a=$(now); tar xf "$2" -C "$d" || exit 23
    b=$(now); t unpack "$a" "$b"
    a=$(now); find "$d" -type f | xargs stat -c '%n %s %Y' > /dev/null || exit 24
    b=$(now); t status "$a" "$b"
    rm -rf "$d"
}
w_prepare() {
    [ -d "$1" ] || exit 3
    [ -w "$1" ] || exit 4
    dir=$(mktemp -d "$1/vmshare-bench.XXXXXX") || exit 4
    echo "I dir $dir"
    echo "I clock $clock_name"
}
w_cleanup() {
    case $1 in */vmshare-bench.??????) ;; *) exit 5 ;; esac
    # a workload that Ctrl-C left running in the guest may still add files: try a few times
    for i in 1 2 3 4 5; do
        rm -rf "$1" 2>/dev/null
        [ -e "$1" ] || exit 0
        sleep 1
    done
    exit 6
}
w_poll() {
    f=$1 ack=$2 n=$3 ticks=$4 stop=$5
    k=0
    while [ $k -le "$n" ]; do
        p=0 num=-1
        while [ ! -e "$stop" ]; do
            v=; read -r v < "$f" 2>/dev/null
            num=${v#s}; num=${num%%e*}
            case $num in ''|*[!0-9]*) num=-1 ;; esac
            [ "$num" -ge "$k" ] && break
            num=-1; p=$((p+1))
            [ $p -ge "$ticks" ] && break
            sleep 0.01
        done
        [ -e "$stop" ] && exit 0
        if [ "$num" -ge 0 ]; then echo "s${num}e" > "$ack"; k=$((num+1))
        else echo "M $k"; k=$((k+1)); fi
    done
    i=0; a=$(now)
    while [ $i -lt 20 ]; do echo "s${i}x" > "$ack.cost"; i=$((i+1)); done
    b=$(now); echo "T ack_cost $(( (b - a) / 20 ))"
    rm -f "$ack.cost"
}
cmd=$1
shift
case $cmd in
    write|read|meta|tree|tarball|dev|prepare|cleanup|poll) "w_$cmd" "$@" ;;
    *) echo "unknown workload $cmd" >&2; exit 9 ;;
esac
"""

# Tree and source-tarball shapes: 20 x 5 x 29 = 3,020 tree entries; 40 x 25 = 1,000 sources.
TREE_SHAPE = (20, 5, 29)
SOURCE_SHAPE = (40, 25)


def tree_entries(shape: tuple[int, int, int] = TREE_SHAPE) -> int:
    """Entries below the tree's root: top dirs, their subdirs, and the files in those."""
    top, sub, files = shape
    return top * (1 + sub * (1 + files))


def argv(workload: str, *args: str) -> list[str]:
    """The argv that runs ``workload`` (SEQ_WRITE, ..., POLLER) in the guest: the fixed script,
    the values as positional parameters (no shell string is built on the host)."""
    return ["sh", "-c", SCRIPT, "sh", workload, *args]


@dataclass(frozen=True)
class Output:
    timings: dict[str, float]  # figure -> seconds
    info: dict[str, str]
    misses: list[int]  # visibility samples the guest never saw


def parse(stdout: bytes | str) -> Output:
    """The ``T``/``I``/``M`` lines a workload printed; other lines are ignored. A malformed
    timing line raises ValueError (a guest that prints nonsense must not become a figure)."""
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout
    timings: dict[str, float] = {}
    info: dict[str, str] = {}
    misses: list[int] = []
    for line in text.splitlines():
        kind, _, rest = line.strip().partition(" ")
        if kind == "T":
            name, _, value = rest.partition(" ")
            nanos = int(value)
            if nanos < 0:
                raise ValueError(f"negative timing for {name}: {value}")
            timings[name] = nanos / 1e9
        elif kind == "I":
            key, _, value = rest.partition(" ")
            info[key] = value
        elif kind == "M":
            misses.append(int(rest))
    return Output(timings, info, misses)


def parse_size(text: str) -> int:
    """``64M``, ``1G``, ``512`` (MiB) -> MiB; whole MiB from 1 to 64 GiB."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 1 / 1024, "M": 1, "G": 1024}.get(value[-1:])
    number = value[:-1] if scale is not None else value
    try:
        mib = float(number) * (scale if scale is not None else 1)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (e.g. 64M, 1G)") from None
    if mib != int(mib) or not 1 <= mib <= 65536:
        raise ValueError(f"size {text!r} must be whole MiB between 1M and 64G")
    return int(mib)


FIGURES = (
    "write",
    "read",
    "create",
    "stat",
    "delete",
    "walk_cold",
    "walk_warm",
    "unpack",
    "status",
)


def workload_order() -> Sequence[str]:
    """The figures in the order they are reported."""
    return FIGURES
