"""`vmshare bench` on a real virtiofs share in the session's test guest: every figure is there and
positive, the visibility test ran from this host, and nothing it made is left in the share or in
the guest's /tmp, also after Ctrl-C."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.testbed.fixtures import Guest, Vmshare

from vmshare.bench.workloads import FIGURES

pytestmark = pytest.mark.integration

SMALL = ("--size", "2M", "--files", "100", "--runs", "1")


def leftovers(guest: Guest, target: str) -> str:
    """Bench dirs left in the share (as the guest sees it) or in the guest's /tmp."""
    code, out, err = guest.sh(
        f"ls -d {target}/vmshare-bench.* /tmp/vmshare-bench.* 2>/dev/null; true"
    )
    assert code == 0, err
    return out.decode()


def test_bench_measures_a_virtiofs_share_and_leaves_nothing(
    guest: Guest, vmshare: Vmshare, open_tmp: Path
):
    src = open_tmp / "bench"
    src.mkdir()
    (src / "mine.txt").write_text("the user's file\n")
    target = "/mnt/bench"
    vmshare("add", str(src), f"{guest.name}:{target}", "--protocol", "virtiofs", check=True)

    result = vmshare.json("bench", f"{guest.name}:{target}", *SMALL, "--samples", "20")

    assert result["ok"], result
    data = result["data"]
    assert data["protocol"] == "virtiofs" and data["host_source"] == str(src)
    figures = {f["key"]: f for f in data["figures"]}
    assert list(figures) == list(FIGURES)
    for figure in figures.values():
        assert figure["share"] > 0 and figure["baseline"] > 0 and figure["ratio"] > 0, figure
    assert data["caches"]["guest"].startswith("dropped")
    assert data["caches"]["host"].startswith("posix_fadvise")
    vis = data["visibility"]
    assert vis["samples"] == 20 and vis["seen"] + vis["unseen"] == 20
    assert 0 < vis["p50_s"] <= vis["p95_s"] and vis["ack_cost_s"] > 0
    assert sorted(p.name for p in src.iterdir()) == ["mine.txt"]
    assert leftovers(guest, target) == ""


def test_bench_interrupted_removes_its_temp_dirs(guest: Guest, vmshare: Vmshare, open_tmp: Path):
    src = open_tmp / "bench-int"
    src.mkdir()
    target = "/mnt/bench-int"
    vmshare("add", str(src), f"{guest.name}:{target}", "--protocol", "virtiofs", check=True)
    env = {**os.environ, "VMSHARE_STATE_DIR": str(vmshare.state_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmshare", "bench", f"{guest.name}:{target}", *SMALL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    seen, deadline = b"", time.monotonic() + 300
    while b"meta on" not in seen and time.monotonic() < deadline:  # mid-run, files in the share
        if select.select([proc.stderr], [], [], 1)[0]:
            seen += os.read(proc.stderr.fileno(), 4096)
        assert proc.poll() is None, seen
    assert list(src.glob("vmshare-bench.*")), "the run made no bench dir to clean"
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    assert proc.returncode == 130, seen + rest
    assert list(src.iterdir()) == []
    assert leftovers(guest, target) == ""
