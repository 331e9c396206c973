"""What each share vmshare makes really does: the POSIX semantics probe (tests/testbed/semantics.sh)
run as root in the test guest on a share of every protocol, made by the real vmshare CLI
(virtiofs and 9p through libvirt, nfs to nfs-ganesha and smb to Samba on loopback).

Run as root from the repo: .venv/bin/python benchmarks/semantics.py [--markdown]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.semantics import Check, probe
from tests.testbed.sharebed import PROTOCOLS, share_bed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="vmshare-semantics", help="name of the guest to boot")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("protocols", nargs="*", default=list(PROTOCOLS))
    args = parser.parse_args()
    results: dict[str, dict[str, Check]] = {}
    with share_bed(args.name) as bed:
        for protocol in args.protocols:
            _, target = bed.share(protocol)
            results[protocol] = probe(bed.dom, target)
            bed.unshare(protocol)
    names = list(dict.fromkeys(n for checks in results.values() for n in checks))
    if args.markdown:
        print("| property | " + " | ".join(results) + " |")
        print("|---|" + "---|" * len(results))
        for name in names:
            cells = [_cell(results[p].get(name)) for p in results]
            print(f"| {name} | " + " | ".join(cells) + " |")
    else:
        print(f"{'property':<26}" + "".join(f"{p:>10}" for p in results))
        for name in names:
            print(f"{name:<26}" + "".join(f"{_cell(results[p].get(name)):>10}" for p in results))
    print()
    for protocol, checks in results.items():
        for check in checks.values():
            if not check.ok:
                print(f"{protocol} {check.name}: {check.detail}")
    return 0


def _cell(check: Check | None) -> str:
    if check is None:
        return "-"
    return "pass" if check.ok else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
