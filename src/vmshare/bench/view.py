"""The people-readable report of ``vmshare bench``: renderables, printed by cli.py."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from vmshare.bench.stats import Report


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.1f} ms"


def report_view(report: Report) -> list[RenderableType]:
    where = f" ({report.protocol} share)" if report.protocol else ""
    table = Table(
        title=f"{report.target}{where} vs guest-local {report.baseline}, "
        f"median of {report.runs} run(s), seconds (lower is better)",
        title_justify="left",
    )
    table.add_column("figure")
    table.add_column("what")
    table.add_column("share", justify="right")
    table.add_column("guest-local", justify="right")
    table.add_column("ratio", justify="right")
    for figure in report.ordered():
        data = figure.as_json()
        ratio = figure.ratio
        table.add_row(
            data["label"],
            figure.detail,
            _seconds(data["share"]),
            _seconds(data["baseline"]),
            "—" if ratio is None else f"{ratio:.2f}x",
        )
    items: list[RenderableType] = [table]
    items.append(Text("ratio = share time / guest-local time: 2.00x means twice as slow."))
    items.append(Text(f"guest caches: {report.guest_caches}; host cache: {report.host_cache}"))
    items.append(Text(f"guest clock: {report.clock}; host load average: {report.load}"))
    vis = report.visibility
    if vis is not None:
        data = vis.as_json()
        items.append(
            Text.assemble(
                ("host-to-guest visibility: ", "bold"),
                f"p50 {_ms(data['p50_s'])}, p95 {_ms(data['p95_s'])}, "
                f"max {_ms(data['max_s'])}, seen {data['seen']}/{data['samples']}, "
                f"guest ack write {_ms(vis.ack_cost)}",
            )
        )
        kinds = [
            f"{name}: p50 {_ms(part['p50_s'])}, p95 {_ms(part['p95_s'])}, "
            f"seen {part['seen']}/{part['seen'] + part['unseen']}"
            for name, part in (
                ("in place, same size", data["same_size"]),
                ("resized", data["resized"]),
            )
            if part
        ]
        if kinds:
            items.append(Text("  " + "; ".join(kinds)))
        items.append(Text(f"method: {vis.method}", style="dim"))
    elif report.visibility_skipped:
        items.append(Text(f"host-to-guest visibility: not measured ({report.visibility_skipped})"))
    return items
