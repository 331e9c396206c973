"""Wall time of `vmshare add` on a running libvirt VM against the same operations done by hand,
interleaved in one run on one guest. Run as root from the repo:

    VMSHARE_IT_VM=NAME-vm .venv/bin/python benchmarks/add_overhead.py [--rounds 15]

Each round times the add half of (a) `vmshare add SRC VM:/mnt/x --protocol virtiofs` (the whole
command, interpreter start included) and (b) by hand through the same layers, each a separate
command as a person would script it: `virsh attach-device --live --config` of the XML vmshare
renders, then `virsh qemu-agent-command` guest-exec (polled with guest-exec-status every 20 ms)
of mkdir+mount (retried while the hot-plugged device is not probed yet, as vmshare does), of an
fstab line, and of a write/read probe. The undo of each (`vmshare remove`; by hand umount, fstab
line, rmdir, detach-device) runs untimed. The order of (a) and (b) alternates between rounds.
Prints both medians and their ratio; the guest is booted here and destroyed at the end.

With ``--baseline-src DIR`` (the src/ folder of another checkout, e.g. `git archive main`), a third
timing per round runs that vmshare's add the same way, so an old and a new version are compared
against the same bare operations in one run. Both source trees are byte-compiled first, as an
installed package is (PYTHONDONTWRITEBYTECODE would otherwise make every run compile).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.domain import boot_domain, destroy_domain
from tests.testbed.guest_image import build_image
from tests.testbed.libvirtd import ensure_libvirtd

from vmshare.backends.libvirt.domain_xml import filesystem_xml
from vmshare.facts import FsDevice

URI = "qemu:///system"
HAND_TAG = "vmshare-bench00000000000"  # the shape of vmshare's tags
HAND_TARGET = "/mnt/y"
POLL = 0.02  # s between guest-exec-status requests by hand


def virsh(*args: str) -> str:
    return subprocess.run(
        ["virsh", "-q", "-c", URI, *args], check=True, capture_output=True, text=True
    ).stdout


def guest_exec(vm: str, script: str, *args: str) -> int:
    """`sh -c script` in the guest through virsh qemu-agent-command; its exit code."""
    request = {
        "execute": "guest-exec",
        "arguments": {"path": "sh", "arg": ["-c", script, "sh", *args], "capture-output": True},
    }
    pid = json.loads(virsh("qemu-agent-command", vm, json.dumps(request)))["return"]["pid"]
    status_request = json.dumps({"execute": "guest-exec-status", "arguments": {"pid": pid}})
    while True:
        status = json.loads(virsh("qemu-agent-command", vm, status_request))["return"]
        if status["exited"]:
            return int(status.get("exitcode", 1))
        time.sleep(POLL)


def by_hand_add(vm: str, xml_file: str) -> None:
    virsh("attach-device", vm, xml_file, "--live", "--config")
    deadline = time.monotonic() + 10
    while guest_exec(vm, 'mkdir -p "$1" && mount -t virtiofs "$2" "$1"', HAND_TARGET, HAND_TAG):
        if time.monotonic() > deadline:
            raise RuntimeError("mount by hand failed")
        time.sleep(0.25)
    line = f"{HAND_TAG} {HAND_TARGET} virtiofs defaults 0 0"
    if guest_exec(vm, 'printf "%s\\n" "$1" >> /etc/fstab', line):
        raise RuntimeError("fstab by hand failed")
    probe = 'printf x > "$1/.probe" && [ "$(cat "$1/.probe")" = x ] && rm "$1/.probe"'
    if guest_exec(vm, probe, HAND_TARGET):
        raise RuntimeError("probe by hand failed")


def by_hand_remove(vm: str, xml_file: str) -> None:
    undo = (
        'grep -v "^$2 " /etc/fstab > /etc/fstab.new; mv /etc/fstab.new /etc/fstab; '
        'umount "$1"; rmdir "$1"'
    )
    guest_exec(vm, undo, HAND_TARGET, HAND_TAG)
    virsh("detach-device", vm, xml_file, "--live", "--config")
    deadline = time.monotonic() + 30
    while HAND_TAG in virsh("dumpxml", vm):
        if time.monotonic() > deadline:
            raise RuntimeError("hot-unplug by hand did not finish")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--name", default=os.environ.get("VMSHARE_IT_VM", "vmshare-bench-add"))
    parser.add_argument("--keep", action="store_true", help="leave the guest running")
    parser.add_argument("--baseline-src", type=Path, help="also time the vmshare in this src/")
    args = parser.parse_args()
    vm = args.name
    vmshare = [str(Path(sys.executable).with_name("vmshare"))]
    import vmshare as current

    trees = [Path(current.__file__).parent, *([args.baseline_src] if args.baseline_src else [])]
    for tree in trees:
        compileall.compile_dir(str(tree), quiet=1)
    ensure_libvirtd(URI)
    work = Path(tempfile.mkdtemp(prefix="vmshare-add-bench-"))
    src = work / "src"
    src.mkdir()
    xml_file = work / "fs.xml"
    xml_file.write_text(
        filesystem_xml(FsDevice(tag=HAND_TAG, source=str(src), protocol="virtiofs"))
    )
    env = {**os.environ, "VMSHARE_STATE_DIR": str(work / "state")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    old_env = {**env, "PYTHONPATH": str(args.baseline_src)}

    def vmshare_add(environ: dict[str, str] = env) -> None:
        argv = [*vmshare, "add", str(src), f"{vm}:/mnt/x", "--protocol", "virtiofs"]
        subprocess.run(argv, check=True, env=environ, capture_output=True)

    def vmshare_remove(environ: dict[str, str] = env) -> None:
        argv = [*vmshare, "remove", f"{vm}:/mnt/x"]
        subprocess.run(argv, check=True, env=environ, capture_output=True)

    def old_add() -> None:
        vmshare_add(old_env)

    def old_remove() -> None:
        vmshare_remove(old_env)

    def hand_add() -> None:
        by_hand_add(vm, str(xml_file))

    def hand_remove() -> None:
        by_hand_remove(vm, str(xml_file))

    boot_domain(URI, vm, Path("/var/tmp/vmshare-testbed") / vm, build_image(), 512)
    kinds = {"vmshare add": (vmshare_add, vmshare_remove)}
    if args.baseline_src:
        kinds[f"vmshare add ({args.baseline_src})"] = (old_add, old_remove)
    kinds["by hand (virsh + agent)"] = (hand_add, hand_remove)
    times: dict[str, list[float]] = {name: [] for name in kinds}
    try:
        for add, remove in kinds.values():  # one untimed round each: caches, the first hot-plug
            add(), remove()
        for round_ in range(args.rounds):
            names = list(kinds)
            shift = round_ % len(names)  # rotate the order between rounds
            for name in names[shift:] + names[:shift]:
                add, remove = kinds[name]
                started = time.monotonic()
                add()
                times[name].append(time.monotonic() - started)
                remove()
    finally:
        if not args.keep:
            destroy_domain(URI, vm)
    load = os.getloadavg()
    hand = statistics.median(times["by hand (virsh + agent)"])
    print(f"{args.rounds} interleaved rounds on {vm}; load average {load[0]:.2f} {load[1]:.2f}")
    print(
        f"{'add (virtiofs, running VM)':<40} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>6}"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<40} {median:>9.3f} {min(values):>7.3f} {max(values):>7.3f} "
            f"{median / hand:>5.2f}x"
        )
    print("ratio = median / median by hand (target for vmshare add: <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
