"""vmshare bench's pure parts (parsing, sizes, percentiles, the JSON shape, argument errors) and
its runner over real shell scripts on this machine (LocalChannel): every figure measured, the
visibility method end to end, and no temp dir left after a run, an error or Ctrl-C."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from vmshare.bench import visibility, workloads
from vmshare.bench.runner import Config, run_bench
from vmshare.bench.stats import Figure, Report, Visibility, percentile
from vmshare.cli import main
from vmshare.errors import GuestError, UsageError
from vmshare.guest.channel import GuestResult
from vmshare.testing import LocalChannel


def vmshare(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


# --- parsing ---------------------------------------------------------------------------------


def test_parse_reads_timings_facts_and_misses_and_ignores_noise():
    out = workloads.parse(b"T write 1500000000\nI clock timer_list\nnoise\nM 7\nT read 2000\n")
    assert out.timings == {"write": 1.5, "read": 2e-6}
    assert out.info == {"clock": "timer_list"}
    assert out.misses == [7]


@pytest.mark.parametrize("bad", ["T write -5", "T write 1.5", "T write", "M x"])
def test_parse_refuses_a_malformed_figure(bad):
    with pytest.raises(ValueError):
        workloads.parse(bad)


@pytest.mark.parametrize(
    ("text", "mib"),
    [("64M", 64), ("64m", 64), ("1G", 1024), ("2GiB", 2048), ("16", 16), ("1024K", 1)],
)
def test_parse_size(text, mib):
    assert workloads.parse_size(text) == mib


@pytest.mark.parametrize("text", ["1.5M", "0", "512K", "65G", "lots", ""])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        workloads.parse_size(text)


def test_tree_has_about_three_thousand_entries():
    assert workloads.tree_entries() == 3020


def test_every_other_visibility_rewrite_changes_the_size():
    sizes = [len(visibility._content(v)) for v in range(0, 9)]
    for value in range(1, 9):
        assert (sizes[value] != sizes[value - 1]) == visibility.resizes(value), sizes
    assert workloads.parse(b"") == workloads.Output({}, {}, [])


# --- statistics and the report -----------------------------------------------------------------


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(20, 0, -1)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile([], 50) is None


def test_unseen_samples_count_as_the_timeout():
    vis = Visibility(20, [0.01] * 18, unseen=2, ack_cost=0.001, method="m", timeout=5.0)
    data = vis.as_json()
    assert data["p50_s"] == 0.01 and data["p95_s"] == 5.0 and data["seen"] == 18


def test_visibility_by_kind_of_rewrite():
    delays = [0.02, None, 0.03, None, 0.01, None]  # the in-place (same size) ones unseen
    resized = [True, False] * 3
    vis = Visibility(6, [0.02, 0.03, 0.01], 3, 0.001, "m", 5.0, resized, delays)
    data = vis.as_json()
    assert data["resized"] == {"seen": 3, "unseen": 0, "p50_s": 0.02, "p95_s": 0.03}
    assert data["same_size"] == {"seen": 0, "unseen": 3, "p50_s": 5.0, "p95_s": 5.0}
    assert data["p95_s"] == 5.0


def test_ratio_is_share_median_over_baseline_median():
    figure = Figure("write", "d", share=[3.0, 1.0, 2.0], baseline=[1.0, 0.5, 10.0])
    assert figure.ratio == 2.0
    assert Figure("read", "d", share=[1.0]).ratio is None


REPORT_KEYS = {
    "target", "vm", "dst", "baseline", "protocol", "host_source", "size_mib", "files",
    "tree_entries", "source_files", "runs", "clock", "caches", "load", "figures", "visibility",
    "visibility_skipped",
}  # fmt: skip
FIGURE_KEYS = {
    "key", "label", "detail", "unit", "share", "baseline", "ratio", "share_runs", "baseline_runs"
}  # fmt: skip
VISIBILITY_KEYS = {
    "samples", "seen", "unseen", "timeout_s", "p50_s", "p95_s", "same_size", "resized", "max_s",
    "ack_cost_s", "latencies_s", "method",
}  # fmt: skip


def test_json_shape_is_stable():
    report = Report(
        "vm:/mnt/x", "vm", "/mnt/x", "/tmp", "virtiofs", "/src", 64, 1000, 3020, 1000, 3
    )
    for key in reversed(workloads.FIGURES):
        report.figure(key, "detail").share.append(1.0)
    report.visibility = Visibility(20, [0.01] * 20, 0, 0.001, "method", 10.0)
    data = json.loads(json.dumps(report.as_json()))
    assert set(data) == REPORT_KEYS
    assert set(data["caches"]) == {"guest", "host"}
    assert [f["key"] for f in data["figures"]] == list(workloads.FIGURES)
    assert all(set(f) == FIGURE_KEYS for f in data["figures"])
    assert set(data["visibility"]) == VISIBILITY_KEYS


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["devvm"], "not VM:DST"),
        (["devvm:mnt/src"], "not VM:DST"),
        (["devvm:/"], "DST must be a directory"),
        (["devvm:/mnt/x", "--size", "1.5M"], "--size"),
        (["devvm:/mnt/x", "--samples", "5"], "at least 20 samples"),
        (["devvm:/mnt/x", "--runs", "0"], "--runs"),
        (["devvm:/mnt/x", "--files", "0"], "--files"),
        (["devvm:/mnt/x", "--baseline", "tmp"], "not an absolute guest path"),
    ],
)
def test_bad_arguments_fail_in_one_line_with_a_hint(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    code, out, err = vmshare(capsys, "bench", *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert message in lines[0] and lines[1].startswith("hint:"), err
    assert out == ""


def test_bad_arguments_give_the_json_error_envelope(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    code, out, _ = vmshare(capsys, "bench", "devvm", "--json")
    assert code == 2
    assert json.loads(out)["data"]["error"]["message"].startswith("not VM:DST")


# --- the runner over real scripts on this machine ------------------------------------------------


class HostChannel(LocalChannel):
    """Runs the guest scripts here; their cache drop writes to a file instead of this host's
    /proc/sys/vm/drop_caches (a test must not empty the machine's caches). ``fail_on``: a
    workload whose run fails, or is interrupted, as a guest command can."""

    def __init__(self, drop_file: Path, fail_on: str | None = None, interrupt: bool = False):
        super().__init__()
        self.drop_file = drop_file
        self.fail_on = fail_on
        self.interrupt = interrupt

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60
    ) -> GuestResult:
        argv = [a.replace("/proc/sys/vm/drop_caches", str(self.drop_file)) for a in argv]
        if self.fail_on is not None and argv[4:5] == [self.fail_on]:
            if self.interrupt:
                raise KeyboardInterrupt
            return GuestResult(1, b"", b"tar: short read\n")
        return super().run(argv, input=input, timeout=timeout)


def report_for(dst: Path, base: Path) -> Report:
    return Report(f"here:{dst}", "here", str(dst), str(base), None, None, 1, 20, 3020, 1000, 1)


def test_runner_measures_every_figure_and_visibility_and_cleans_up(tmp_path):
    dst, base = tmp_path / "share", tmp_path / "local"
    dst.mkdir()
    base.mkdir()
    (dst / "mine.txt").write_text("keep")
    channel = HostChannel(tmp_path / "drop")
    events: list[tuple[str, str]] = []
    config = Config(size_mib=1, files=20, runs=2, samples=20, visibility_timeout=5, gap=0.05)

    report = run_bench(
        channel, report_for(dst, base), config, dst, lambda e, t: events.append((e, t))
    )

    data = report.as_json()
    assert [f["key"] for f in data["figures"]] == list(workloads.FIGURES)
    for figure in data["figures"]:
        assert len(figure["share_runs"]) == len(figure["baseline_runs"]) == 2
        assert figure["share"] > 0 and figure["baseline"] > 0
    assert report.guest_caches.startswith("dropped")
    assert (tmp_path / "drop").read_text() == "3\n"
    assert report.host_cache.startswith("posix_fadvise")
    vis = data["visibility"]
    assert vis["seen"] == 20 and vis["unseen"] == 0
    assert vis["same_size"]["seen"] == vis["resized"]["seen"] == 10
    assert "every 10 ms" in vis["method"] and "{" not in vis["method"]
    assert 0 < vis["p50_s"] <= vis["p95_s"] < 5 and vis["ack_cost_s"] > 0
    assert report.clock in ("timer_list", "date_ns", "uptime")
    assert sorted(p.name for p in dst.iterdir()) == ["mine.txt"]
    assert list(base.iterdir()) == []
    assert ("start", "visibility: starting the guest reader") in events


@pytest.mark.parametrize("interrupt", [False, True])
def test_a_failed_or_interrupted_run_leaves_no_temp_dir(tmp_path, interrupt):
    dst, base = tmp_path / "share", tmp_path / "local"
    dst.mkdir()
    base.mkdir()
    # it fails (or Ctrl-C comes) in the metadata phase, after files were written in both dirs
    channel = HostChannel(tmp_path / "drop", fail_on=workloads.METADATA, interrupt=interrupt)
    config = Config(size_mib=1, files=5, runs=1, samples=0)
    with pytest.raises(KeyboardInterrupt if interrupt else GuestError) as raised:
        run_bench(channel, report_for(dst, base), config)
    assert interrupt or "tar: short read" in str(raised.value)
    assert any(call[4] == workloads.SEQ_WRITE for call in channel.calls)
    assert list(dst.iterdir()) == [] and list(base.iterdir()) == []


def test_a_read_only_or_missing_dir_is_refused_before_anything_is_made(tmp_path):
    base = tmp_path / "local"
    base.mkdir()
    channel = HostChannel(tmp_path / "drop")
    with pytest.raises(UsageError, match="not a directory"):
        run_bench(channel, report_for(tmp_path / "nope", base), Config(samples=0))
    assert list(base.iterdir()) == []


def test_a_read_only_share_is_refused_before_the_vm_is_contacted(tmp_path):
    from tests.unit.factories import applied_state, spec_of

    from vmshare.bench.command import bench, parse_target
    from vmshare.state import StateStore

    store = StateStore(tmp_path)
    store.save(applied_state(spec_of("/srv/ro testvm:/mnt/ro readonly=true")))
    # DST below the share is in it too: the deepest share holding DST answers
    assert parse_target("testvm:/mnt/ro/sub", store.load()).record is not None
    assert parse_target("testvm:/mnt/other", store.load()).record is None
    with pytest.raises(UsageError, match="read-only share") as raised:
        bench("testvm:/mnt/ro/sub", store, Config())
    assert raised.value.hint


def test_the_table_shows_each_figure_its_ratio_and_the_visibility_method():
    from rich.console import Console

    from vmshare.bench.view import report_view

    report = Report(
        "vm:/mnt/x", "vm", "/mnt/x", "/tmp", "virtiofs", "/src", 64, 1000, 3020, 1000, 3
    )
    report.figure("write", "64 MiB").share.extend([2.0, 2.0])
    report.figure("write", "64 MiB").baseline.extend([0.5, 0.5])
    report.visibility = Visibility(
        20, [0.02] * 20, 0, 0.001, visibility.method(20, 0.2, 10), 10.0, [True, False] * 10
    )
    console = Console(record=True, width=200)
    for item in report_view(report):
        console.print(item)
    text = console.export_text()
    assert "sequential write" in text and "4.00x" in text and "virtiofs share" in text
    assert "p95 20.0 ms" in text and "resized: p50 20.0 ms" in text
    assert "upper bound" in text
