"""Cold-start wall time of `vmshare --help` and `vmshare list` (empty state) against a bare Typer
app with as many commands and `python3 -c pass`, all in one hyperfine run.

Run: .venv/bin/python benchmarks/startup.py [--rounds 5 --runs 10] [--baseline-src DIR]
Uses Debian's hyperfine (-N: no shell, 3 warm-up runs each), called for several rounds with the
order of the commands rotated, so that a changing load falls on all of them; medians over all
runs. Prints medians, the ratio of `vmshare --help` to the bare Typer app's `--help` (target
<= 1.3x) and of `vmshare list` to `vmshare --help` (target <= 1.2x). vmshare's sources are
byte-compiled first, as an installed package is.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# A Typer app as small as one can write, with the same number of commands as vmshare's (11, the
# aliases included), each with an argument and an option, and no imports of its own.
BARE_APP = '''
import typer

app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown")

def make(name):
    def command(target: str | None = typer.Argument(None), json: bool = False) -> None:
        """A command."""
    command.__name__ = name
    return command

for name in {names!r}:
    app.command(name)(make(name))

app()
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="runs per command in each round")
    parser.add_argument("--rounds", type=int, default=5, help="hyperfine runs, order rotated")
    parser.add_argument(
        "--baseline-src", type=Path, help="also time the vmshare in this src/ (another checkout)"
    )
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        sys.exit("hyperfine is missing: apt install hyperfine")
    import vmshare
    from vmshare.cli import app

    compileall.compile_dir(str(Path(vmshare.__file__).parent), quiet=1)
    names = [c.name or c.callback.__name__ for c in app.registered_commands if c.callback]
    vmshare_bin = Path(sys.executable).with_name("vmshare")
    with tempfile.TemporaryDirectory() as work, tempfile.NamedTemporaryFile(suffix=".json") as out:
        bare = Path(work) / "bare_typer.py"
        bare.write_text(BARE_APP.format(names=names))
        commands = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            f"bare Typer --help ({len(names)} cmds)": [sys.executable, str(bare), "--help"],
            "vmshare --help": [str(vmshare_bin), "--help"],
            "vmshare list": [str(vmshare_bin), "list"],
        }
        if args.baseline_src:
            compileall.compile_dir(str(args.baseline_src), quiet=1)
            old = ["env", f"PYTHONPATH={args.baseline_src}", str(vmshare_bin)]
            commands["baseline vmshare --help"] = [*old, "--help"]
            commands["baseline vmshare list"] = [*old, "list"]
        env = {**os.environ, "VMSHARE_STATE_DIR": str(Path(work) / "state")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.rounds):  # rounds interleave the commands under a changing load
            names = list(commands)
            names = names[round_ % len(names) :] + names[: round_ % len(names)]
            argv = ["hyperfine", "-N", "--warmup", "3", "--runs", str(args.runs)]
            argv += ["--export-json", out.name]
            for name in names:
                argv += ["-n", name, " ".join(commands[name])]
            subprocess.run(argv, check=True, env=env, capture_output=True)  # its warnings too
            for result in json.loads(Path(out.name).read_text())["results"]:
                times[result["command"]] += result["times"]
    results = {name: statistics.median(values) for name, values in times.items()}
    base = results["python3 -c pass"]
    load = os.getloadavg()
    runs = f"{args.rounds} rounds x {args.runs} runs each"
    print(f"hyperfine, {runs}; load average {load[0]:.2f} {load[1]:.2f}")
    print(f"{'command':<28} {'median ms':>10} {'vs python3 -c pass':>20}")
    for name, median in results.items():
        print(f"{name:<28} {median * 1000:>10.1f} {median / base:>19.2f}x")
    bare_help = next(v for k, v in results.items() if k.startswith("bare Typer"))
    for prefix in ("", "baseline ") if args.baseline_src else ("",):
        helps, lists = results[f"{prefix}vmshare --help"], results[f"{prefix}vmshare list"]
        print(f"{prefix}vmshare --help / bare Typer --help: {helps / bare_help:.2f}x (<= 1.3x)")
        print(f"{prefix}vmshare list / {prefix}vmshare --help: {lists / helps:.2f}x (<= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
