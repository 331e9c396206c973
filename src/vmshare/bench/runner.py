"""Run the benchmark through a guest channel: the share's directory and a guest-local baseline,
interleaved workload by workload, ``runs`` times; medians and ratios in a ``Report``.

Everything it makes goes in one ``vmshare-bench.XXXXXX`` dir inside each of the two
directories, removed at the end, also on error and Ctrl-C.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vmshare.bench import visibility, workloads
from vmshare.bench.stats import Report
from vmshare.errors import GuestError, UsageError
from vmshare.guest.channel import GuestChannel

# (event, text): "start" when a phase begins, "done" when it ends, "note" for a fact
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Config:
    size_mib: int = 64
    files: int = 1000
    runs: int = 3
    samples: int = 20  # visibility samples; 0 skips the test
    visibility_timeout: float = 10.0  # s before a host edit counts as unseen
    gap: float = 0.2  # s between a value seen and the next rewrite
    command_timeout: float = 900.0  # s for one workload in the guest

    def check(self) -> None:
        """Refuse values that would give no honest figure."""
        if self.runs < 1:
            raise UsageError("--runs must be at least 1", hint="e.g. --runs 3 (the default)")
        if self.files < 1:
            raise UsageError("--files must be at least 1", hint="e.g. --files 1000 (the default)")
        if self.samples != 0 and self.samples < 20:
            raise UsageError(
                f"--samples {self.samples}: p95 needs at least 20 samples",
                hint="--samples 20 or more, or --samples 0 to skip the visibility test",
            )
        if self.visibility_timeout <= 0:
            raise UsageError("--visibility-timeout must be positive", hint="e.g. 10")


def _quiet(event: str, text: str) -> None:
    pass


class Bench:
    """One run of the benchmark over ``channel``."""

    def __init__(self, channel: GuestChannel, config: Config, progress: Progress | None) -> None:
        self.channel = channel
        self.config = config
        self.progress = progress or _quiet

    def guest(self, workload: str, *args: str) -> workloads.Output:
        argv = workloads.argv(workload, *args)
        result = self.channel.run(argv, timeout=self.config.command_timeout)
        if result.exit_code != 0:
            raise GuestError(
                f"benchmark workload failed in the guest (exit {result.exit_code}): "
                f"{result.error_line}",
                hint="check the share with `vmshare status`; smaller --size or --files if the "
                "guest ran out of space",
            )
        try:
            return workloads.parse(result.stdout)
        except ValueError as exc:
            raise GuestError(f"benchmark output not understood: {exc}") from None

    def prepare(self, directory: str, what: str) -> tuple[str, str]:
        """A fresh bench dir inside ``directory``: (its path, the guest clock's name)."""
        result = self.channel.run(workloads.argv(workloads.PREPARE, directory), timeout=60)
        if result.exit_code in workloads.PREPARE_CODES:
            problem = workloads.PREPARE_CODES[result.exit_code]
            raise UsageError(
                f"{what} {directory}: {problem}",
                hint="bench needs a writable directory in the guest (a read-write share); "
                "`vmshare list` shows the shares",
            )
        if result.exit_code != 0:
            raise GuestError(f"cannot prepare {directory} in the guest: {result.error_line}")
        info = workloads.parse(result.stdout).info
        return info["dir"], info.get("clock", "unknown")

    def cleanup(self, directory: str) -> None:
        result = self.channel.run(workloads.argv(workloads.CLEANUP, directory), timeout=120)
        if result.exit_code != 0:
            raise GuestError(
                f"could not remove the benchmark's temp dir {directory} in the guest",
                hint=f"remove it by hand: rm -rf {directory}",
            )

    @contextmanager
    def dirs(self, dst: str, baseline: str) -> Iterator[tuple[str, str, str]]:
        """(share bench dir, baseline bench dir, clock), both removed on the way out."""
        made: list[str] = []
        try:
            share_dir, clock = self.prepare(dst, "DST")
            made.append(share_dir)
            base_dir, _ = self.prepare(baseline, "--baseline")
            made.append(base_dir)
            yield share_dir, base_dir, clock
        finally:
            errors = []
            for directory in reversed(made):
                try:
                    self.cleanup(directory)
                except GuestError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]


def drop_host_cache(path: Path) -> None:
    """Drop this host's page cache of one file: written back first, then DONTNEED."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_bench(
    channel: GuestChannel,
    report: Report,
    config: Config,
    host_dir: Path | None = None,
    progress: Progress | None = None,
) -> Report:
    """Measure ``report.dst`` and ``report.baseline`` in the guest; ``host_dir`` is DST's
    folder on this host when it is here (its cache is dropped before reads and the visibility
    test runs)."""
    config.check()
    bench = Bench(channel, config, progress)
    say = bench.progress
    with bench.dirs(report.dst, report.baseline) as (share_dir, base_dir, clock):
        report.clock = clock
        tarball = f"{base_dir}/src.tar"
        dirs_, per_dir = workloads.SOURCE_SHAPE
        say("start", f"making a source tarball of {dirs_ * per_dir} files in {base_dir}")
        bench.guest(workloads.MAKE_TARBALL, base_dir, tarball, str(dirs_), str(per_dir))
        say("done", "source tarball made")
        host_bench = host_dir / Path(share_dir).name if host_dir is not None else None
        for run in range(config.runs):
            # alternate which side goes first, so neither always runs on a warmer guest
            sides = [("share", share_dir), ("baseline", base_dir)]
            if run % 2:
                sides.reverse()
            for phase in ("seq", "meta", "tree", "dev"):
                for side, directory in sides:
                    label = f"run {run + 1}/{config.runs}: {phase} on {side} ({directory})"
                    say("start", label)
                    timings, info = _phase(bench, phase, directory, tarball, side, host_bench)
                    report.guest_caches = info.get("guest_caches", report.guest_caches)
                    for key, seconds in timings.items():
                        figure = report.figure(key, _detail(key, report))
                        (figure.share if side == "share" else figure.baseline).append(seconds)
                    say("done", f"{label}: " + _brief(timings))
        if host_bench is not None:
            report.host_cache = "posix_fadvise(DONTNEED) on the host file before each read"
        if config.samples and host_bench is not None:
            done = 0

            def tick(value: int) -> None:
                nonlocal done
                done = value
                say("start", f"visibility: sample {value}/{config.samples}")

            say("start", "visibility: starting the guest reader")
            report.visibility = visibility.measure(
                channel,
                share_dir,
                host_bench,
                f"{base_dir}/vis.stop",
                samples=config.samples,
                timeout=config.visibility_timeout,
                gap=config.gap,
                progress=tick,
            )
            say("done", f"visibility: {done} samples")
        elif config.samples:
            report.visibility_skipped = "DST's folder is not on this host"
        else:
            report.visibility_skipped = "--samples 0"
    if report.guest_caches == "dropped":
        report.guest_caches = "dropped (echo 3 > /proc/sys/vm/drop_caches) before each cold figure"
    elif report.guest_caches == "kept":
        report.guest_caches = "not dropped: the guest channel's user may not write drop_caches"
    return report


def _phase(
    bench: Bench, phase: str, directory: str, tarball: str, side: str, host_bench: Path | None
) -> tuple[dict[str, float], dict[str, str]]:
    config = bench.config
    if phase == "seq":
        write = bench.guest(workloads.SEQ_WRITE, directory, str(config.size_mib))
        if side == "share" and host_bench is not None:
            drop_host_cache(host_bench / "seq.bin")
        read = bench.guest(workloads.SEQ_READ, directory)
        return {**write.timings, **read.timings}, {**write.info, **read.info}
    if phase == "meta":
        out = bench.guest(workloads.METADATA, directory, str(config.files))
    elif phase == "tree":
        out = bench.guest(workloads.TREE, directory, *map(str, workloads.TREE_SHAPE))
    else:
        out = bench.guest(workloads.DEV, directory, tarball)
    return out.timings, out.info


def _detail(key: str, report: Report) -> str:
    return {
        "write": f"{report.size_mib} MiB, dd bs=1M conv=fsync",
        "read": f"{report.size_mib} MiB, dd bs=1M, caches dropped",
        "create": f"{report.files} empty files",
        "stat": f"ls -l of {report.files} files",
        "delete": f"rm -rf of {report.files} files",
        "walk_cold": f"ls -lR of {report.tree_entries} entries, guest caches dropped",
        "walk_warm": f"ls -lR of {report.tree_entries} entries, again",
        "unpack": f"tar xf of {report.source_files} small files",
        "status": f"find | xargs stat of {report.source_files} files",
    }.get(key, key)


def _brief(timings: dict[str, float]) -> str:
    return ", ".join(f"{key} {seconds:.3f} s" for key, seconds in timings.items())
