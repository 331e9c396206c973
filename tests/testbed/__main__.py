"""python -m tests.testbed {libvirtd,image,up,exec,down}: manage the vmshare test guest by hand."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import libvirt

from .domain import agent_exec, boot_domain, destroy_domain, wait_for_agent
from .guest_image import build_image
from .libvirtd import ensure_libvirtd, quiet_libvirt
from .servers import free_port

DEFAULT_URI = "qemu:///system"
DEFAULT_NAME = "testvm"


def _running(uri: str, name: str) -> libvirt.virDomain | None:
    """The domain if it runs and its agent answers, else None."""
    quiet_libvirt()
    try:
        dom = libvirt.open(uri).lookupByName(name)
    except libvirt.libvirtError:
        return None
    if not dom.isActive():
        return None
    try:
        wait_for_agent(dom, timeout=10)
    except TimeoutError:
        return None
    return dom


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__)
    parser.add_argument("--uri", default=DEFAULT_URI, help="libvirt URI (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("libvirtd", help="prepare and start libvirtd if it does not answer")
    commands.add_parser("image", help="build the image if needed and print its paths")
    up = commands.add_parser("up", help="build the image if needed and boot the guest")
    up.add_argument("--name", default=DEFAULT_NAME)
    up.add_argument("--workdir", type=Path, help="default /var/tmp/vmshare-testbed/NAME")
    up.add_argument("--memory", type=int, default=256, help="MiB (default %(default)s)")
    up.add_argument("--reuse", action="store_true", help="keep the guest if it already runs")
    up.add_argument(
        "--ssh-port", type=int, help="forward 127.0.0.1:PORT to the guest's ssh (0: a free port)"
    )
    run = commands.add_parser("exec", help="run a command in the guest through its agent")
    run.add_argument("--name", default=DEFAULT_NAME)
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    down = commands.add_parser("down", help="destroy and undefine the guest")
    down.add_argument("--name", default=DEFAULT_NAME)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="testbed: %(message)s")
    log = logging.getLogger("tests.testbed")

    if args.command == "libvirtd":
        ensure_libvirtd(args.uri)
    elif args.command == "image":
        image = build_image()
        print(f"kernel {image.kernel}\ninitrd {image.initrd}")
    elif args.command == "up":
        ensure_libvirtd(args.uri)
        if args.reuse and _running(args.uri, args.name) is not None:
            log.info("%s already runs; reusing it", args.name)
            return 0
        workdir = args.workdir or Path("/var/tmp/vmshare-testbed", args.name)
        image = build_image()
        log.info("booting %s (workdir %s)", args.name, workdir)
        port = free_port() if args.ssh_port == 0 else args.ssh_port
        _dom, seconds = boot_domain(args.uri, args.name, workdir, image, args.memory, ssh_port=port)
        log.info("console log: %s", workdir / f"{args.name}-console.log")
        print(f"{args.name} up: guest agent answered after {seconds:.1f}s")
        if port is not None:
            print(f"ssh: 127.0.0.1 port {port}")
    elif args.command == "exec":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        dom = _running(args.uri, args.name)
        if dom is None or not command:
            parser.error(f"{args.name} is not running, or no command given")
        code, out, err = agent_exec(dom, command)
        sys.stdout.buffer.write(out)
        sys.stderr.buffer.write(err)
        return code
    else:
        ensure_libvirtd(args.uri)
        destroy_domain(args.uri, args.name)
        log.info("%s removed", args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
