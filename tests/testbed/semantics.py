"""Measure what a share in the test guest really does: the POSIX semantics probe (semantics.sh)
and how soon a host edit becomes visible to a guest reader that polls every 10 ms.

Both run inside the guest through the guest agent; nothing here knows which protocol the share
uses, so the same measurement holds every protocol to the same standard.
"""

from __future__ import annotations

import os
import statistics
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import libvirt

from .domain import agent_exec

PROBE = Path(__file__).with_name("semantics.sh")
GUEST_PROBE = "/tmp/vmshare-semantics.sh"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def probe(dom: libvirt.virDomain, directory: str, timeout: float = 600) -> dict[str, Check]:
    """Run the semantics probe as root on the mounted share at directory; name -> Check."""
    code, _, err = agent_exec(
        dom, ["sh", "-c", 'cat > "$1"', "sh", GUEST_PROBE], PROBE.read_bytes()
    )
    if code != 0:
        raise RuntimeError(f"cannot copy the probe into the guest: {err!r}")
    code, out, err = agent_exec(dom, ["sh", GUEST_PROBE, directory], timeout=timeout)
    if code != 0:
        raise RuntimeError(f"probe on {directory} exited {code}: {err.decode(errors='replace')}")
    checks = {}
    for line in out.decode(errors="replace").splitlines():
        name, _, rest = line.partition(": ")
        verdict, _, detail = rest.partition(" ")
        if verdict not in ("pass", "fail"):
            raise RuntimeError(f"probe printed an unexpected line: {line!r}")
        checks[name] = Check(name, verdict == "pass", detail)
    return checks


# --- visibility of host edits -------------------------------------------------------------------

# The guest reader: cat the file every 10 ms and announce each new content on the serial console,
# which QEMU writes to a host file at once, so the host times it with its own clock only.
READER = r"""
f=$1 tag=$2 stop=$3
last=$(cat "$f" 2>/dev/null)
echo "VMSHARE-READER $tag ready" >/dev/ttyS0
while [ ! -e "$stop" ]; do
    now=$(cat "$f" 2>/dev/null)
    if [ "$now" != "$last" ]; then
        echo "VMSHARE-SEEN $tag $now" >/dev/ttyS0
        last=$now
    fi
    usleep 10000
done
"""
GUEST_READER = "/tmp/vmshare-reader.sh"


def console_path(dom: libvirt.virDomain) -> Path:
    source = ET.fromstring(dom.XMLDesc(0)).find("./devices/serial[@type='file']/source")
    if source is None or not source.get("path"):
        raise RuntimeError(f"{dom.name()} has no file-backed serial console")
    return Path(source.get("path", ""))


class Console:
    """Follows the guest's serial console log from the current end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size
        self.buffer = ""

    def wait_for(self, line: str, timeout: float) -> float | None:
        """Monotonic time at which line appeared, or None after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            now = time.monotonic()
            self.offset += len(data)
            self.buffer += data.decode(errors="replace")
            lines = self.buffer.replace("\r", "").split("\n")
            self.buffer = lines.pop()  # an unfinished line
            if any(seen.strip() == line for seen in lines):
                return now
            if now > deadline:
                return None
            time.sleep(0.005)


@dataclass(frozen=True)
class Visibility:
    delays: list[float]  # seconds per rewrite; a rewrite never seen counts as the timeout
    unseen: int
    timeout: float = 5.0

    @property
    def p50(self) -> float:
        return statistics.median(self.delays)

    @property
    def p95(self) -> float:
        return _p95(self.delays)

    @property
    def resized(self) -> Visibility:
        """Only the rewrites that changed the file's size (the odd ones, truncated first)."""
        delays = self.delays[1::2]
        return Visibility(delays, sum(1 for d in delays if d >= self.timeout), self.timeout)


def _p95(delays: list[float]) -> float:
    ordered = sorted(delays)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]  # nearest rank

    def summary(self) -> str:
        shown = ", ".join(f"{d:.2f}" for d in self.delays)
        return f"p50 {self.p50:.2f} s, p95 {self.p95:.2f} s, unseen {self.unseen} ({shown})"


def visibility(
    dom: libvirt.virDomain,
    host_file: Path,
    guest_file: str,
    rewrites: int = 10,
    timeout: float = 5.0,
    pause: float = 0.3,
) -> Visibility:
    """Rewrite host_file `rewrites` times (alternately the same size in place, and a new size
    with O_TRUNC) while a guest process polls guest_file every 10 ms; how long each new content
    took to show there, measured on the host."""
    tag = f"r{os.getpid()}-{time.monotonic_ns() % 10**9}"
    stop = f"/tmp/{tag}.stop"
    host_file.write_text("v-start")
    console = Console(console_path(dom))
    agent_exec(dom, ["sh", "-c", 'cat > "$1"', "sh", GUEST_READER], READER.encode())
    start = 'setsid sh "$@" </dev/null >/dev/null 2>&1 &'
    code, _, err = agent_exec(dom, ["sh", "-c", start, "sh", GUEST_READER, guest_file, tag, stop])
    if code != 0:
        raise RuntimeError(f"cannot start the guest reader: {err!r}")
    try:
        if console.wait_for(f"VMSHARE-READER {tag} ready", 30) is None:
            raise RuntimeError(f"the guest reader did not start on {guest_file}")
        delays, unseen = [], 0
        for i in range(rewrites):
            if i % 2 == 0:  # same size, in place: only the times and the data change
                content = f"v-{i:05d}".ljust(host_file.stat().st_size, "y")
                with open(host_file, "r+b") as f:
                    started = time.monotonic()
                    f.write(content.encode())
            else:  # another size, truncated first
                content = f"v-{i:05d}-" + "x" * i
                started = time.monotonic()
                with open(host_file, "wb") as f:
                    f.write(content.encode())
            seen = console.wait_for(f"VMSHARE-SEEN {tag} {content}", timeout)
            if seen is None:
                unseen += 1
                delays.append(timeout)
            else:
                delays.append(seen - started)
            time.sleep(pause)
        return Visibility(delays, unseen, timeout)
    finally:
        agent_exec(dom, ["touch", stop])
