"""Candidate settings per share protocol, measured interleaved in one guest: what vmshare's
defaults are chosen from (docs/performance.md, "Defaults by measurement").

Run as root from the repo (VMSHARE_IT_VM names the guest):
    .venv/bin/python benchmarks/defaults.py [--runs 3] [--rewrites 24] [--only nfs ...]

The bed is tests/testbed/sharebed.py: one TCG guest, nfs-ganesha and Samba on loopback, one share
per protocol made by the real vmshare CLI (its fstab line gives the "vmshare" candidate's mount
exactly), plus extra <filesystem> devices for the device-level candidates (virtiofsd cache mode,
queue size; a 9p device with Lima's security model). Each round mounts every
candidate in turn (order rotated per round), runs the workloads with busybox `time` in the guest
(the agent round trip excluded), measures visibility there and unmounts; figures are medians
over rounds. Guest caches are dropped before cold steps; the host's are not (the host is shared).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.domain import agent_exec, guest_seconds
from tests.testbed.semantics import Visibility, visibility
from tests.testbed.sharebed import NETWORK_OWNER, ShareBed, share_bed

MIB = 64
FILES = 1000
# ~3,000 entries: 3 x 10 directories of 100 files, plus the directories
TREE = (3, 10, 100)

# Lima's 9p defaults (lima-vm/lima pkg/limayaml/defaults.go: Default9pSecurityModel "none",
# Default9pProtocolVersion "9p2000.L", Default9pMsize "128KiB", Default9pCacheForRW "mmap").
LIMA_9P = ["trans=virtio", "version=9p2000.L", "msize=131072", "cache=mmap"]
NFS_TUNED = ["vers=4.2", "hard", "proto=tcp", "rsize=1048576", "wsize=1048576"]
SMB_BASE = ["vers=3.1.1", "mfsymlinks", "cache=loose"]

TMPFS_TREE = (
    f"for a in $(seq 0 {TREE[0] - 1}); do for b in $(seq 0 {TREE[1] - 1}); do "
    f"d=/tmp/bench/tree/a$a/b$b; mkdir -p $d; for c in $(seq 0 {TREE[2] - 1}); do "
    'echo "int f$a_$b_$c;" > $d/f$c.c; done; done; done'
)
STEPS = ("write", "read", "create", "stat", "delete", "walk_cold", "walk_warm")
DROP = "sync; echo 3 > /proc/sys/vm/drop_caches"
SCRIPTS = {
    "write": f'dd if=/dev/zero of="$1/w-$2.bin" bs=1M count={MIB} conv=fsync 2>/dev/null',
    "read": 'dd if="$1/w-$2.bin" of=/dev/null bs=1M 2>/dev/null',
    "create": f'd="$1/m-$2"; mkdir "$d"; i=0; while [ $i -lt {FILES} ]; do : > "$d/f$i"; '
    "i=$((i+1)); done",
    "stat": 'ls -l "$1/m-$2" > /dev/null',
    "delete": 'rm -rf "$1/m-$2"',
    "walk_cold": 'ls -lR "$1/tree" > /dev/null',
    "walk_warm": 'ls -lR "$1/tree" > /dev/null',
}


@dataclass
class Candidate:
    protocol: str  # virtiofs, 9p, nfs, smb, tmpfs
    name: str
    note: str  # what differs, in words
    options: list[str] = field(default_factory=list)  # guest mount options
    tag: str = ""  # device tag, for device candidates
    times: dict[str, list[float]] = field(default_factory=dict)
    delays: list[float] = field(default_factory=list)
    failed: str = ""

    def median(self, step: str) -> float:
        return statistics.median(self.times[step]) if self.times.get(step) else math.nan


def virtiofs_device(
    source: Path,
    tag: str,
    cache: str | None = None,
    queue: int | None = None,
    pool: int | None = None,
) -> ET.Element:
    """A virtiofs <filesystem> with libvirt 9's driver/binary tuning elements."""
    fs = ET.Element("filesystem", type="mount", accessmode="passthrough")
    driver = ET.SubElement(fs, "driver", type="virtiofs")
    if queue is not None:
        driver.set("queue", str(queue))
    if cache is not None or pool is not None:
        binary = ET.SubElement(fs, "binary")
        if cache is not None:
            ET.SubElement(binary, "cache", mode=cache)
        if pool is not None:
            ET.SubElement(binary, "thread_pool", size=str(pool))
    ET.SubElement(fs, "source", dir=str(source))
    ET.SubElement(fs, "target", dir=tag)
    return fs


def ninep_squash_device(source: Path, tag: str) -> ET.Element:
    """9p as Lima makes it: security_model=none (libvirt's accessmode squash)."""
    fs = ET.Element("filesystem", type="mount", accessmode="squash")
    ET.SubElement(fs, "source", dir=str(source))
    ET.SubElement(fs, "target", dir=tag)
    return fs


def make_tree(root: Path, owner: tuple[int, int] | None) -> None:
    top, mid, files = TREE
    for a in range(top):
        for b in range(mid):
            d = root / "tree" / f"a{a}" / f"b{b}"
            d.mkdir(parents=True, exist_ok=True)
            for c in range(files):
                (d / f"f{c}.c").write_text(f"int f{a}_{b}_{c};\n")
    if owner is not None:
        subprocess.run(["chown", "-R", f"{owner[0]}:{owner[1]}", str(root / "tree")], check=True)


def guest(dom: object, script: str, *args: str, timeout: float = 600) -> str:
    code, out, err = agent_exec(dom, ["sh", "-c", script, "sh", *args], timeout=timeout)
    if code != 0:
        raise RuntimeError(f"guest: {script[:60]!r} -> {code}: {err.decode(errors='replace')}")
    return out.decode(errors="replace")


def timed(dom: object, script: str, *args: str) -> float:
    return guest_seconds(dom, script, *args, timeout=240)


def fstab_entry(dom: object, target: str) -> tuple[str, str, list[str]]:
    """(source, fstype, options) of the fstab line vmshare wrote for target."""
    for line in guest(dom, "cat /etc/fstab").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == target:
            return parts[0], parts[2], parts[3].split(",")
    raise RuntimeError(f"vmshare wrote no fstab line for {target}")


@dataclass
class Mountable:
    source: str
    fstype: str
    host_dir: Path


def run_round(
    bed: ShareBed,
    cands: list[Candidate],
    where: dict[str, Mountable],
    vis_n: int,
    vis_timeout: float,
    log: list[str],
) -> None:
    for cand in cands:
        if cand.failed:
            continue
        if cand.protocol == "tmpfs":
            path = "/tmp/bench"
        else:
            path = f"/mnt/b-{cand.name}"
            spot = where[cand.protocol if not cand.tag else cand.tag]
            guest(bed.dom, 'mkdir -p "$1"', path)
            try:
                code, _, err = agent_exec(
                    bed.dom,
                    ["mount", "-t", spot.fstype, "-o", ",".join(cand.options), spot.source, path],
                    timeout=120,
                )
            except TimeoutError:
                code, err = 1, b"mount did not return in 120 s"
            if code != 0:
                cand.failed = f"mount failed: {err.decode(errors='replace').strip()}"
                log.append(f"{cand.protocol}/{cand.name}: {cand.failed}")
                continue
        try:
            for step in STEPS:
                if step in ("read", "walk_cold"):
                    guest(bed.dom, DROP)
                cand.times.setdefault(step, []).append(
                    timed(bed.dom, SCRIPTS[step], path, cand.name)
                )
            guest(bed.dom, 'rm -f "$1/w-$2.bin"', path, cand.name)
            if cand.protocol != "tmpfs":
                spot = where[cand.protocol if not cand.tag else cand.tag]
                host_file = spot.host_dir / f"edited-{cand.name}.txt"
                vis = visibility(
                    bed.dom, host_file, f"{path}/edited-{cand.name}.txt", vis_n, vis_timeout
                )
                cand.delays.extend(vis.delays)
        except Exception as exc:  # one candidate's failure is a finding, not the end of the run
            cand.failed = str(exc).splitlines()[0][:200]
            log.append(f"{cand.protocol}/{cand.name}: {cand.failed}")
        finally:
            if cand.protocol != "tmpfs":
                time.sleep(0.5)  # the visibility reader stops on its next poll
                try:
                    agent_exec(bed.dom, ["umount", path], timeout=120)
                except TimeoutError:
                    log.append(f"{cand.protocol}/{cand.name}: umount did not return in 120 s")
        print(
            f"  {cand.protocol}/{cand.name}: "
            + ", ".join(f"{s} {cand.times[s][-1]:.2f}" for s in STEPS if cand.times.get(s)),
            file=sys.stderr,
            flush=True,
        )


def candidates(src: dict[str, Path], only: list[str]) -> tuple[list[Candidate], list[ET.Element]]:
    dev = src["dev"]
    c: list[Candidate] = [Candidate("tmpfs", "tmpfs", "guest tmpfs (/tmp)")]
    devices: list[ET.Element] = []
    if "virtiofs" in only:
        c.append(Candidate("virtiofs", "vmshare", "vmshare's device, its fstab line"))
        for name, note, kw in (
            ("always", "cache=always", {"cache": "always"}),
            ("none", "cache=none", {"cache": "none"}),
            ("q1024", "cache=auto, queue=1024", {"queue": 1024}),
        ):
            tag = f"vfs{name}"
            devices.append(virtiofs_device(dev, tag, **kw))  # type: ignore[arg-type]
            c.append(Candidate("virtiofs", name, note, [], tag))
    if "9p" in only or "virtiofs" in only:
        devices.append(ninep_squash_device(dev, "lima9p"))
        c.append(
            Candidate(
                "9p",
                "lima",
                "Lima: " + ",".join(LIMA_9P[2:]) + ", security none",
                LIMA_9P,
                "lima9p",
            )
        )
    if "9p" in only:
        base = ["trans=virtio", "version=9p2000.L"]
        c += [
            Candidate("9p", "vmshare", "vmshare's mount, its fstab line"),
            Candidate(
                "9p", "mmap", "msize=512000,cache=mmap", [*base, "msize=512000", "cache=mmap"]
            ),
            Candidate(
                "9p", "loose", "msize=512000,cache=loose", [*base, "msize=512000", "cache=loose"]
            ),
            Candidate("9p", "m1m", "msize=1048576 (cache=none)", [*base, "msize=1048576"]),
        ]
    if "nfs" in only:
        c += [
            Candidate("nfs", "vmshare", "vmshare's mount, its fstab line"),
            Candidate("nfs", "untuned", "vers=4.1 only", ["vers=4.1"]),
            Candidate("nfs", "acdef", "no actimeo (kernel ac 3-60 s)", NFS_TUNED),
            Candidate(
                "nfs",
                "split",
                "acregmin=1,acregmax=1 (directories: kernel's 30-60 s)",
                [*NFS_TUNED, "acregmin=1", "acregmax=1"],
            ),
            Candidate(
                "nfs",
                "poslook",
                "no actimeo, lookupcache=positive",
                [*NFS_TUNED, "lookupcache=positive"],
            ),
            Candidate("nfs", "nocto", "actimeo=1,nocto", [*NFS_TUNED, "actimeo=1", "nocto"]),
            Candidate("nfs", "ncon4", "no actimeo, nconnect=4", [*NFS_TUNED, "nconnect=4"]),
        ]
    if "smb" in only:
        c += [
            Candidate("smb", "vmshare", "vmshare's mount, its fstab line"),
            Candidate("smb", "untuned", "credentials, vers=3.1.1 only", ["vers=3.1.1"]),
            Candidate(
                "smb",
                "split",
                "cache=loose,acregmax=1,acdirmax=30",
                [*SMB_BASE, "acregmax=1", "acdirmax=30"],
            ),
            Candidate(
                "smb",
                "multich",
                "cache=loose,actimeo=1,multichannel,max_channels=2",
                [*SMB_BASE, "actimeo=1", "multichannel", "max_channels=2"],
            ),
        ]
    return c, devices


# The final run's set, pruned by a first round of all candidates (docs/performance.md): cache=always
# never showed a host edit, cache=none walks 8-15x slower, 9p cache=loose/mmap did not beat msize.
FINAL = {
    "tmpfs": {"tmpfs"},
    "virtiofs": {"vmshare", "q1024"},
    "9p": {"lima", "vmshare"},
    "nfs": {"vmshare", "untuned", "acdef", "split"},
    "smb": {"vmshare", "untuned", "split"},
}

KEEP = {
    "nfs": ("rw", "port="),
    "smb": ("rw", "credentials=", "port=", "uid=", "gid=", "seal"),
    "9p": (),
}


def fill_options(cands: list[Candidate], vmshare_opts: dict[str, list[str]]) -> None:
    """vmshare candidates take the fstab line's options; the others its connection options
    (port, credentials, owner, encryption) with their own tuning."""
    for cand in cands:
        if cand.protocol not in vmshare_opts:
            continue
        opts = vmshare_opts[cand.protocol]
        if cand.name == "vmshare":
            cand.options = [o for o in opts if o not in ("nofail", "defaults", "_netdev")]
        elif not cand.tag:
            keep = [o for o in opts if any(o.startswith(k) for k in KEEP[cand.protocol])]
            if cand.name == "untuned" and cand.protocol == "smb":
                keep = [o for o in keep if o.startswith(("rw", "credentials=", "port="))]
            cand.options = [*keep, *cand.options]


def p95(delays: list[float]) -> float:
    ordered = sorted(delays)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)] if ordered else math.nan


def report(cands: list[Candidate], args: argparse.Namespace, log: list[str]) -> str:
    out = [
        f"{MIB} MiB write (fsync) and cold read, {FILES} files created/stat'ed/deleted, a "
        f"{TREE[0] * TREE[1] * (TREE[2] + 1) + TREE[0]}-entry tree walked (`ls -lR`) cold and "
        f"warm; seconds, median of {args.runs} interleaved rounds; visibility over "
        f"{args.rewrites} host rewrites (a rewrite unseen after {args.vis_timeout:.0f} s counts "
        "as that); p95r: only the rewrites that change the size",
        "",
        "| share | candidate | " + " | ".join(STEPS) + " | vis p50 | vis p95 | p95r |",
        "|---|---|" + "---|" * (len(STEPS) + 3),
    ]
    for cand in cands:
        cells = [f"{cand.median(s):.3f}" for s in STEPS]
        vis = Visibility(cand.delays, 0, args.vis_timeout) if cand.delays else None
        v = (
            [f"{vis.p50:.2f}", f"{vis.p95:.2f}", f"{p95(cand.delays[1::2]):.2f}"]
            if vis
            else ["n/a"] * 3
        )
        label = f"{cand.name} ({cand.note})" + (f" FAILED: {cand.failed}" if cand.failed else "")
        out.append(f"| {cand.protocol} | {label} | " + " | ".join(cells + v) + " |")
    out += ["", "Ratios (baseline time / candidate time; > 1 is faster):", ""]
    by = {(c.protocol, c.name): c for c in cands}
    lima = by.get(("9p", "lima"))
    if lima:
        for cand in cands:
            if cand.protocol != "virtiofs":
                continue
            r = {s: lima.median(s) / cand.median(s) for s in STEPS}
            out.append(
                f"- virtiofs {cand.name} vs 9p-Lima: "
                + ", ".join(f"{s} {r[s]:.2f}x" for s in STEPS)
            )
    for proto in ("nfs", "smb"):
        base = by.get((proto, "untuned"))
        if not base:
            continue
        mix = ("write", "read", "walk_warm")
        base_sum = sum(base.median(s) for s in mix)
        for cand in cands:
            if cand.protocol == proto and cand.name != "untuned":
                ratio = base_sum / sum(cand.median(s) for s in mix)
                out.append(
                    f"- {proto} {cand.name} vs untuned, write+read+warm walk: {ratio:.2f}x ("
                    + ", ".join(f"{s} {base.median(s) / cand.median(s):.2f}x" for s in mix)
                    + ")"
                )
    for cand in cands:
        out.append(f"- options {cand.protocol}/{cand.name}: {','.join(cand.options) or '-'}")
    out += [f"- note: {line}" for line in log]
    return "\n".join(out)


def measure(
    args: argparse.Namespace, cands: list[Candidate], devices: list[ET.Element], dev: Path
) -> None:
    """Boot the bed, make the shares, run the rounds, print the report."""
    log: list[str] = []
    per_round = args.rewrites // args.runs
    started = time.monotonic()
    with share_bed(args.name, extra_devices=devices) as bed:
        where: dict[str, Mountable] = {}
        vmshare_opts: dict[str, list[str]] = {}
        for proto in ("virtiofs", "9p", "nfs", "smb"):
            if not any(c.protocol == proto and not c.tag for c in cands):
                continue
            src, target = bed.share(proto)
            make_tree(src, NETWORK_OWNER if proto in ("nfs", "smb") else None)
            source, fstype, opts = fstab_entry(bed.dom, target)
            agent_exec(bed.dom, ["umount", target], timeout=120)
            where[proto] = Mountable(source, fstype, src)
            vmshare_opts[proto] = opts
        for tag, fstype in [(c.tag, c.protocol) for c in cands if c.tag]:
            where[tag] = Mountable(tag, fstype, dev)
        fill_options(cands, vmshare_opts)
        for cand in cands:
            if cand.tag and not cand.options and cand.protocol == "virtiofs":
                cand.options = ["rw"]
        guest(bed.dom, TMPFS_TREE)
        for run in range(args.runs):
            shift = run % len(cands)
            order = cands[shift:] + cands[:shift]
            print(f"round {run + 1}/{args.runs}", file=sys.stderr, flush=True)
            run_round(bed, order, where, per_round, args.vis_timeout, log)
            print(
                report(cands, args, log), file=sys.stderr, flush=True
            )  # kept if a later round dies
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(
            f"guest boot {bed.boot_seconds:.1f} s; run {time.monotonic() - started:.0f} s; "
            f"uptime at the end: {load}"
        )
    print(report(cands, args, log))
    shutil.rmtree(bed.work, ignore_errors=True)  # the bed's folders, servers stopped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default=os.environ.get("VMSHARE_IT_VM", "vmshare-defaults"))
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--rewrites", type=int, default=24, help="host rewrites per candidate")
    parser.add_argument("--vis-timeout", type=float, default=3.0)
    parser.add_argument("--only", nargs="*", default=["virtiofs", "9p", "nfs", "smb"])
    parser.add_argument("--all", action="store_true", help="every candidate, not the final set")
    parser.add_argument("--names", nargs="*", help="only these PROTOCOL/NAME candidates (+ tmpfs)")
    args = parser.parse_args()
    per_round = max(2, 2 * math.ceil(args.rewrites / args.runs / 2))  # even: alternation holds
    args.rewrites = per_round * args.runs
    dev = Path(f"/var/tmp/vmshare-defaults-{os.getpid()}")
    dev.mkdir(mode=0o755, parents=True)
    make_tree(dev, None)
    cands, devices = candidates({"dev": dev}, args.only)
    if args.names:
        cands = [
            c for c in cands if c.protocol == "tmpfs" or f"{c.protocol}/{c.name}" in args.names
        ]
    elif not args.all:
        cands = [c for c in cands if c.name in FINAL[c.protocol]]
    if args.names or not args.all:
        tags = {c.tag for c in cands}
        devices = [d for d in devices if d.find("target").get("dir") in tags]  # type: ignore[union-attr]
    try:
        measure(args, cands, devices, dev)
    finally:
        shutil.rmtree(dev, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
