"""`vmshare bench` on a share of each protocol in the test guest, each next to the guest's own /tmp
measured in the same run. Run as root from the repo:

    VMSHARE_IT_VM=NAME .venv/bin/python benchmarks/bench.py [--size 64M --files 1000 --runs 3]

Boots the test-bed guest (and nfs-ganesha and Samba on loopback), makes each share with the real
CLI and its default settings, runs the real `vmshare bench VM:DST --json` on it, and prints each
figure with its ratio to the guest-local baseline (share time / local time: lower is better),
then host-to-guest visibility p50/p95. The guest is destroyed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.sharebed import PROTOCOLS, share_bed

from vmshare.bench.stats import LABELS
from vmshare.bench.workloads import FIGURES


def run(bed: Any, target: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.human:  # the command's own table, as a user sees it
        print(bed.vmshare("bench", f"{bed.name}:{target}", *options(args)).stdout)
    proc = bed.vmshare("bench", f"{bed.name}:{target}", *options(args), "--json")
    data: dict[str, Any] = json.loads(proc.stdout)["data"]
    return data


def options(args: argparse.Namespace) -> list[str]:
    return [
        "--size",
        args.size,
        "--files",
        str(args.files),
        "--runs",
        str(args.runs),
        "--samples",
        str(args.samples),
        "--visibility-timeout",
        str(args.visibility_timeout),
    ]


def show(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    print(f"{'figure':<30}" + "".join(f"{n:>22}" for n in names))
    print(f"{'':<30}" + "".join(f"{'share s / local s':>22}" for _ in names))
    for key in FIGURES:
        row = f"{LABELS[key]:<30}"
        for name in names:
            figure = next(f for f in results[name]["figures"] if f["key"] == key)
            cell = f"{figure['share']:.3f}/{figure['baseline']:.3f} {figure['ratio']:.2f}x"
            row += f"{cell:>22}"
        print(row)
    for label, field in (("visibility p50", "p50_s"), ("visibility p95", "p95_s")):
        row = f"{label:<30}"
        for name in names:
            vis = results[name]["visibility"]
            cell = f"{vis[field] * 1000:.1f} ms" if vis else "—"
            row += f"{cell:>22}"
        print(row)
    for label, kind in (("  p95 in place, same size", "same_size"), ("  p95 resized", "resized")):
        row = f"{label:<30}"
        for name in names:
            vis = results[name]["visibility"]
            cell = f"{vis[kind]['p95_s'] * 1000:.1f} ms" if vis and vis[kind] else "—"
            row += f"{cell:>22}"
        print(row)
    row = f"{'visibility seen / samples':<30}"
    for name in names:
        vis = results[name]["visibility"]
        cell = f"{vis['seen']}/{vis['samples']}" if vis else "—"
        row += f"{cell:>22}"
    print(row)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--size", default="64M", help="file size for sequential I/O")
    parser.add_argument("--files", type=int, default=1000, help="small files for metadata")
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    parser.add_argument("--samples", type=int, default=20, help="visibility samples")
    parser.add_argument("--visibility-timeout", type=float, default=10.0)
    parser.add_argument(
        "--human", action="store_true", help="also run and print the command's own table first"
    )
    parser.add_argument("--json", type=Path, help="also write every report to this file")
    parser.add_argument(
        "--name", default=os.environ.get("VMSHARE_IT_VM", "vmshare-bench"), help="guest to boot"
    )
    parser.add_argument("protocols", nargs="*", default=list(PROTOCOLS))
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    load = os.getloadavg()
    with share_bed(args.name) as bed:
        for protocol in args.protocols:
            _, target = bed.share(protocol)
            print(f"benchmarking {protocol} at {bed.name}:{target} ...", file=sys.stderr)
            results[protocol] = run(bed, target, args)
            bed.unshare(protocol)
            if args.json:  # as each protocol finishes: a long run stopped early keeps the rest
                args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"vmshare bench, {args.size} file, {args.files} files, median of {args.runs} run(s), "
        f"visibility over {args.samples} samples; guest booted in {bed.boot_seconds:.1f} s; "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    show(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
