"""python -m tests.testbed {up,down,image}: manage the vmshare test guest by hand."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .domain import boot_domain, destroy_domain
from .guest_image import build_image
from .libvirtd import ensure_libvirtd

DEFAULT_URI = "qemu:///system"
DEFAULT_NAME = "testvm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__)
    parser.add_argument("--uri", default=DEFAULT_URI, help="libvirt URI (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build the image if needed and boot the guest")
    up.add_argument("--name", default=DEFAULT_NAME)
    up.add_argument("--workdir", type=Path, help="default /var/tmp/vmshare-testbed/NAME")
    up.add_argument("--memory", type=int, default=256, help="MiB (default %(default)s)")
    down = commands.add_parser("down", help="destroy and undefine the guest")
    down.add_argument("--name", default=DEFAULT_NAME)
    commands.add_parser("image", help="build the image if needed and print its paths")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="testbed: %(message)s")
    log = logging.getLogger("tests.testbed")

    if args.command == "image":
        image = build_image()
        print(f"kernel {image.kernel}\ninitrd {image.initrd}")
    elif args.command == "up":
        workdir = args.workdir or Path("/var/tmp/vmshare-testbed", args.name)
        ensure_libvirtd(args.uri)
        image = build_image()
        log.info("booting %s (workdir %s)", args.name, workdir)
        _dom, seconds = boot_domain(args.uri, args.name, workdir, image, args.memory)
        log.info("console log: %s", workdir / f"{args.name}-console.log")
        print(f"{args.name} up: guest agent answered after {seconds:.1f}s")
    else:
        ensure_libvirtd(args.uri)
        destroy_domain(args.uri, args.name)
        log.info("%s removed", args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
