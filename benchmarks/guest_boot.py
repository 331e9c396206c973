"""Boot time of the test guest to a ready guest agent, cold boot against an in-guest reboot.

Run as root: .venv/bin/python benchmarks/guest_boot.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.domain import boot_domain, destroy_domain, reboot_guest
from tests.testbed.guest_image import build_image
from tests.testbed.libvirtd import ensure_libvirtd

URI = "qemu:///system"
NAME = "vmshare-bench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ensure_libvirtd(URI)
    image = build_image()
    workdir = Path("/var/tmp/vmshare-testbed") / NAME
    cold, warm = [], []
    try:
        for _ in range(args.runs):
            dom, seconds = boot_domain(URI, NAME, workdir, image)
            cold.append(seconds)
            warm.append(reboot_guest(dom))
    finally:
        destroy_domain(URI, NAME)
    cold_median, warm_median = statistics.median(cold), statistics.median(warm)
    print(f"cold boot to agent: median {cold_median:.1f} s over {args.runs} runs {cold}")
    ratio = cold_median / warm_median
    print(f"reboot to agent:    median {warm_median:.1f} s; ratio cold/reboot {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
