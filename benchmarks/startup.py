"""Cold-start wall time of `vmshare --help` and `vmshare list` against `python3 -c pass`.

Run: .venv/bin/python benchmarks/startup.py [--runs 20]
Uses Debian's hyperfine; prints medians and each command's ratio to the bare interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        sys.exit("hyperfine is missing: apt install hyperfine")
    vmshare = Path(sys.executable).with_name("vmshare")
    commands = {
        "python3 -c pass": [sys.executable, "-c", "pass"],
        "vmshare --help": [str(vmshare), "--help"],
        "vmshare list": [str(vmshare), "list"],
    }
    with tempfile.TemporaryDirectory() as state, tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "VMSHARE_STATE_DIR": state}
        argv = [
            "hyperfine",
            "-N",
            "--warmup",
            "3",
            "--runs",
            str(args.runs),
            "--export-json",
            out.name,
        ]
        for name, command in commands.items():
            argv += ["-n", name, " ".join(command)]
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
        results = json.loads(Path(out.name).read_text())["results"]
    base = results[0]["median"]
    print(f"{'command':<18} {'median ms':>10} {'vs python3 -c pass':>20}")
    for result in results:
        median = result["median"]
        print(f"{result['command']:<18} {median * 1000:>10.1f} {median / base:>19.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
