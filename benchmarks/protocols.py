"""Read/write throughput and metadata speed of each share protocol in the test guest, next to the
guest's own tmpfs, in one run. Run as root from the repo: .venv/bin/python benchmarks/protocols.py

Each share is set up by the real vmshare CLI with its default settings (virtiofs, 9p, nfs to
nfs-ganesha, smb to Samba on loopback; network folders owned by a non-root user); timings come
from busybox `time` inside the guest, so the agent round trip is excluded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.domain import agent_exec, guest_seconds
from tests.testbed.sharebed import PROTOCOLS, share_bed

NAME = "vmshare-bench"

WRITE = 'dd if=/dev/zero of="$1/bench.bin" bs=1M count="$2" conv=fsync 2>/dev/null'
READ = 'echo 3 > /proc/sys/vm/drop_caches; dd if="$1/bench.bin" of=/dev/null bs=1M 2>/dev/null'
META = (
    'd="$1/meta"; mkdir -p "$d"; i=0; while [ $i -lt "$2" ]; do : > "$d/f$i"; i=$((i+1)); done; '
    'ls -l "$d" > /dev/null; rm -rf "$d"'
)


def timed(dom: object, script: str, *args: str) -> float:
    return guest_seconds(dom, script, *args, timeout=600)


def measure(dom: object, path: str, mib: int, files: int, runs: int) -> tuple[float, float, float]:
    write = statistics.median(timed(dom, WRITE, path, str(mib)) for _ in range(runs))
    read = statistics.median(timed(dom, READ, path) for _ in range(runs))
    meta = statistics.median(timed(dom, META, path, str(files)) for _ in range(runs))
    agent_exec(dom, ["rm", "-f", f"{path}/bench.bin"])
    return mib / write, mib / read, files / meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=32, help="file size for throughput")
    parser.add_argument("--files", type=int, default=200, help="files for the metadata loop")
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    parser.add_argument("--name", default=NAME, help="name of the guest to boot")
    parser.add_argument("protocols", nargs="*", default=list(PROTOCOLS))
    args = parser.parse_args()
    results: dict[str, tuple[float, float, float]] = {}
    with share_bed(args.name) as bed:
        boot = bed.boot_seconds
        results["tmpfs (guest)"] = measure(bed.dom, "/tmp", args.mib, args.files, args.runs)
        for protocol in args.protocols:
            _, target = bed.share(protocol)
            results[protocol] = measure(bed.dom, target, args.mib, args.files, args.runs)
    base = results["tmpfs (guest)"]
    print(
        f"guest boot {boot:.1f} s; {args.mib} MiB files, {args.files} files, median of {args.runs}"
    )
    print(
        f"{'share':<14} {'write MiB/s':>12} {'read MiB/s':>11} {'files/s':>9}   vs tmpfs w/r/meta"
    )
    for name, (write, read, meta) in results.items():
        print(
            f"{name:<14} {write:>12.1f} {read:>11.1f} {meta:>9.0f}   "
            f"{write / base[0]:.2f} / {read / base[1]:.2f} / {meta / base[2]:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
