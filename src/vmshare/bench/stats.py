"""Medians, percentiles and the report of ``vmshare bench``: its figures, their ratios to the
guest-local baseline, and the stable JSON shape scripts read (docs/cli.md). Pure."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from vmshare.bench.workloads import workload_order

LABELS = {
    "write": "sequential write",
    "read": "sequential read (cold)",
    "create": "create files",
    "stat": "stat files",
    "delete": "delete files",
    "walk_cold": "tree walk (cold)",
    "walk_warm": "tree walk (warm)",
    "unpack": "unpack source tree",
    "status": "stat every file (git status)",
}


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (p50 of 20 samples is the 10th smallest)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figure:
    key: str
    detail: str  # what exactly was timed, e.g. "64 MiB, dd bs=1M conv=fsync"
    share: list[float] = field(default_factory=list)  # seconds, one per run
    baseline: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """Share time over baseline time: 2.0 means the share took twice as long."""
        share, base = median(self.share), median(self.baseline)
        if share is None or base is None or base <= 0:
            return None
        return share / base

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": LABELS.get(self.key, self.key),
            "detail": self.detail,
            "unit": "s",
            "share": median(self.share),
            "baseline": median(self.baseline),
            "ratio": self.ratio,
            "share_runs": self.share,
            "baseline_runs": self.baseline,
        }


@dataclass
class Visibility:
    samples: int
    latencies: list[float]  # seconds, the samples the guest saw (upper bounds; see method)
    unseen: int
    ack_cost: float | None  # seconds the guest takes to write one ack (guest clock)
    method: str
    timeout: float
    resized: list[bool] = field(default_factory=list)  # per sample: did it change the size
    delays: list[float | None] = field(default_factory=list)  # per sample; None: unseen

    def _summary(self, delays: list[float | None]) -> dict[str, Any]:
        # an unseen sample counts as the timeout: the percentile cannot be lower than that
        padded = [self.timeout if d is None else d for d in delays]
        return {
            "seen": sum(1 for d in delays if d is not None),
            "unseen": sum(1 for d in delays if d is None),
            "p50_s": percentile(padded, 50),
            "p95_s": percentile(padded, 95),
        }

    def as_json(self) -> dict[str, Any]:
        delays = self.delays or [*self.latencies, *[None] * self.unseen]
        overall = self._summary(delays)
        kinds = {
            kind: self._summary([d for d, r in zip(delays, self.resized, strict=True) if r == want])
            for kind, want in (("same_size", False), ("resized", True))
            if self.resized
        }
        return {
            "samples": self.samples,
            "seen": overall["seen"],
            "unseen": overall["unseen"],
            "timeout_s": self.timeout,
            "p50_s": overall["p50_s"],
            "p95_s": overall["p95_s"],
            "same_size": kinds.get("same_size"),
            "resized": kinds.get("resized"),
            "max_s": max(self.latencies) if self.latencies else None,
            "ack_cost_s": self.ack_cost,
            "latencies_s": self.latencies,
            "method": self.method,
        }


@dataclass
class Report:
    target: str  # VM:DST as given
    vm: str
    dst: str
    baseline: str
    protocol: str | None  # from vmshare's record of the share, when there is one
    host_source: str | None  # the share's folder on this host, when it is here
    size_mib: int
    files: int
    tree_entries: int
    source_files: int
    runs: int
    clock: str = "unknown"
    guest_caches: str = "unknown"
    host_cache: str = "not dropped"
    figures: dict[str, Figure] = field(default_factory=dict)
    visibility: Visibility | None = None
    visibility_skipped: str | None = None
    load: str | None = None  # the host's load average when the run started

    def figure(self, key: str, detail: str) -> Figure:
        return self.figures.setdefault(key, Figure(key, detail))

    def ordered(self) -> list[Figure]:
        return [self.figures[k] for k in workload_order() if k in self.figures]

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "vm": self.vm,
            "dst": self.dst,
            "baseline": self.baseline,
            "protocol": self.protocol,
            "host_source": self.host_source,
            "size_mib": self.size_mib,
            "files": self.files,
            "tree_entries": self.tree_entries,
            "source_files": self.source_files,
            "runs": self.runs,
            "clock": self.clock,
            "caches": {"guest": self.guest_caches, "host": self.host_cache},
            "load": self.load,
            "figures": [f.as_json() for f in self.ordered()],
            "visibility": self.visibility.as_json() if self.visibility else None,
            "visibility_skipped": self.visibility_skipped,
        }
