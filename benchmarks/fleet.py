"""`vmshare apply` on a fleet: one NFS share on each of N vSphere VMs (the vCenter simulator),
timed against one share on one VM in the same run, a no-op re-apply of the fleet's spec, and
`--parallel 1` against the default.

Every simulated VM stands for the one real QEMU test guest: its guest operations run there (so
each VM's share has a guest path of its own, /mnt/rRUN-I, and is made with ``persist = false``:
N VMs' edits of the one guest's /etc/fstab at once are refused as concurrent edits, as they
should be, where N real VMs have an fstab each), its exports go to the real nfs-ganesha on
loopback. The guest work of N shares therefore all lands on one TCG guest; the
figures say how much of the time that is.

Run as root from the repo (boots the guest VMSHARE_IT_VM, default fleet-vm):
    VMSHARE_IT_VM=fleet-vm .venv/bin/python benchmarks/fleet.py [--vms 100] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.domain import agent_exec
from tests.testbed.sharebed import share_bed
from tests.testbed.vcsim import Vcsim

OWNER = (33, 33)  # a named non-root owner, as the integration tests use


def spec_text(vcsim: Vcsim, vms: Sequence[str], sources: Path, prefix: str) -> str:
    text = ""
    for index, vm in enumerate(vms):
        source = sources / f"{prefix}-{index}"
        source.mkdir(exist_ok=True)
        os.chown(source, *OWNER)
        text += (
            f'[vm."{vm}"]\nbackend = "vsphere"\nserver = "{vcsim.host}:{vcsim.port}"\n'
            f'user = "{vcsim.username}"\npassword_env = "VMSHARE_IT_VC_PASSWORD"\n'
            f'ca_file = "{vcsim.ca_file}"\n[vm."{vm}".guest]\n'
            f'login_user = "{vcsim.guest_user}"\nlogin_password_env = "VMSHARE_IT_GUEST_PASSWORD"\n'
            f'[[share]]\nsource = "{source}"\nvm = "{vm}"\ntarget = "/mnt/{prefix}-{index}"\n'
            f'protocol = "nfs"\nowner = "{OWNER[0]}:{OWNER[1]}"\npersist = false\n'
        )
    return text


def timed_apply(env: dict[str, str], spec: Path, *extra: str) -> tuple[float, dict]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "vmshare.cli", "apply", "-f", str(spec), "--json", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=7200,
        check=False,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        try:
            error = json.loads(proc.stdout)["data"]["error"]["message"]
        except (ValueError, KeyError):
            error = proc.stdout[-3000:] + proc.stderr[-3000:]
        raise RuntimeError(f"apply {spec.name} {extra} -> {proc.returncode}: {error}")
    return seconds, json.loads(proc.stdout)


def guest_capacity(dom: object, calls: int = 24, threads: int = 8) -> tuple[float, float]:
    """Seconds for ``calls`` trivial guest commands through the guest agent (what every simulated
    VM's guest operations end in), one after another and from ``threads`` threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    def call(_: int) -> None:
        agent_exec(dom, ["true"])

    started = time.monotonic()
    for index in range(calls):
        call(index)
    serial = time.monotonic() - started
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(call, range(calls)))
    return serial, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=100, help="VMs in the fleet")
    parser.add_argument("--runs", type=int, default=1, help="fleet runs (one VM: runs + 1)")
    parser.add_argument("--name", default=os.environ.get("VMSHARE_IT_VM", "fleet-vm"))
    parser.add_argument("--no-serial", action="store_true", help="skip the --parallel 1 run")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    with share_bed(args.name) as bed:

        def guest_exec(argv: Sequence[str], stdin: bytes | None, timeout: float):
            return agent_exec(bed.dom, argv, stdin=stdin, timeout=timeout)

        sources = bed.work / "sources"
        sources.mkdir()
        sources.chmod(0o755)
        one: list[float] = []
        fleet: list[float] = []
        noop: list[float] = []
        serial: list[float] = []
        run = 0

        def fresh(vms: int) -> tuple[Vcsim, dict[str, str]]:
            """A new simulator and state dir: every measured apply starts from nothing."""
            nonlocal run
            run += 1
            sim = Vcsim(vms=max(vms, 1), guest_vms=vms, guest_exec=guest_exec)
            sim.__enter__()
            state = bed.work / f"state-{run}"
            env = {
                **bed.env,
                "VMSHARE_STATE_DIR": str(state),
                "VMSHARE_IT_VC_PASSWORD": sim.password,
                "VMSHARE_IT_GUEST_PASSWORD": sim.guest_password,
            }
            return sim, env

        def apply_once(vms: int, *extra: str, reapply: bool = False) -> float:
            sim, env = fresh(vms)
            try:
                spec = bed.work / f"spec-{run}.toml"
                spec.write_text(spec_text(sim, sim.guest_vms, sources, f"r{run}"))
                seconds, result = timed_apply(env, spec, *extra)
                done = result["data"].get("vms") or [{"ok": True}]
                assert all(row["ok"] for row in done), done
                print(f"  apply, {vms} VM(s) {' '.join(extra)}: {seconds:.2f} s", flush=True)
                if reapply:
                    again, result = timed_apply(env, spec)
                    assert result["data"]["plan"]["steps"] == [], result
                    noop.append(again)
                    print(f"  no-op re-apply, {vms} VM(s): {again:.2f} s", flush=True)
                return seconds
            finally:
                sim.__exit__(None, None, None)
                # the guest keeps the mounts; a fresh target prefix per run keeps runs apart
                agent_exec(bed.dom, ["sh", "-c", "umount -a -t nfs4 -l 2>/dev/null; true"])

        capacity = guest_capacity(bed.dom)
        print(
            f"  24 guest commands: {capacity[0]:.2f} s in turn, {capacity[1]:.2f} s from 8 threads"
        )
        one.append(apply_once(1))
        for _ in range(args.runs):
            fleet.append(apply_once(args.vms, reapply=True))
            if not args.no_serial:
                serial.append(apply_once(args.vms, "--parallel", "1"))
            one.append(apply_once(1))
        shutil.rmtree(sources, ignore_errors=True)

    t1, tn, t0 = statistics.median(one), statistics.median(fleet), statistics.median(noop)
    print(f"\nload after: {os.getloadavg()}")
    print(f"one share on 1 VM:          {t1:.2f} s (median of {len(one)}: {one})")
    print(f"one share on each of {args.vms} VMs: {tn:.2f} s (default --parallel)")
    print(f"  ratio {args.vms} VMs / 1 VM:   {tn / t1:.1f}x (target <= 5x)")
    print(f"no-op re-apply, {args.vms} VMs:    {t0:.2f} s (target < 3 s)")
    print(
        f"the one guest's agent: 24 commands in {capacity[0]:.2f} s in turn, "
        f"{capacity[1]:.2f} s from 8 threads ({capacity[0] / capacity[1]:.1f}x)"
    )
    if serial:
        ts = statistics.median(serial)
        print(f"{args.vms} VMs with --parallel 1: {ts:.2f} s; default is {ts / tn:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
