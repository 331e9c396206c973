"""python -m tests.testbed.vcsim {build,serve}: build the vCenter simulator, or run it by hand."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys

from . import Vcsim, build_launcher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed.vcsim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the launcher if needed and print its path")
    serve = commands.add_parser("serve", help="start it, print its ready line, stop on Ctrl-C")
    serve.add_argument("--vms", type=int, default=4)
    serve.add_argument("--hosts", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "build":
        launcher = build_launcher()
        print(json.dumps({"binary": str(launcher.binary), "build_seconds": launcher.build_seconds}))
        return 0
    with Vcsim(vms=args.vms, hosts=args.hosts) as sim:
        ready = {k: v for k, v in sim.info.items() if k != "cert_pem"}
        ready.update(ca_file=str(sim.ca_file), start_seconds=round(sim.start_seconds, 3))
        ready.update(password=sim.password)
        print(json.dumps(ready), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
