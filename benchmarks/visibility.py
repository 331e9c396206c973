"""How soon a host edit is visible in the guest, per protocol: a host process rewrites a file
(alternately the same size in place, and another size) while a guest process reads it with
`cat` every 10 ms and reports each new content on the serial console, timed on the host.

Run as root from the repo: .venv/bin/python benchmarks/visibility.py [--rewrites N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.semantics import Visibility, visibility
from tests.testbed.sharebed import PROTOCOLS, share_bed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="vmshare-visibility", help="name of the guest to boot")
    parser.add_argument("--rewrites", type=int, default=20, help="host rewrites per protocol")
    parser.add_argument("--timeout", type=float, default=70, help="give up on a rewrite after")
    parser.add_argument("protocols", nargs="*", default=list(PROTOCOLS))
    args = parser.parse_args()
    results: dict[str, Visibility] = {}
    with share_bed(args.name) as bed:
        for protocol in args.protocols:
            src, target = bed.share(protocol)
            results[protocol] = visibility(
                bed.dom, src / "edited.txt", f"{target}/edited.txt", args.rewrites, args.timeout
            )
            print(f"{protocol}: {results[protocol].summary()}", file=sys.stderr)
            bed.unshare(protocol)
    print(f"{args.rewrites} host rewrites per share, guest reader polling every 10 ms")
    print(f"{'share':<10}{'p50 s':>8}{'p95 s':>8}{'max s':>8}{'unseen':>8}")
    for protocol, vis in results.items():
        print(f"{protocol:<10}{vis.p50:>8.2f}{vis.p95:>8.2f}{max(vis.delays):>8.2f}{vis.unseen:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
