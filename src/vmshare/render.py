"""Rich tables and progress for people, and the ``--json`` envelope for scripts.

User-supplied strings always go through ``Text`` (never markup), so a path like ``[red]x`` prints
as itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vmshare.secrets import redact

if TYPE_CHECKING:
    from vmshare.doctor import Check
    from vmshare.errors import VmshareError
    from vmshare.plan import Plan
    from vmshare.state import ShareRecord
    from vmshare.status import ShareHealth

ENVELOPE_VERSION = 1
LAYER_TITLES = {"host": "host", "hypervisor": "hypervisor", "guest": "guest"}
MARKS = {"ok": "green", "warn": "yellow", "fail": "red", "missing": "red", "failed": "red"}


def envelope(command: str, data: Any, *, ok: bool = True) -> str:
    return json.dumps(
        {"vmshare": ENVELOPE_VERSION, "command": command, "ok": ok, "data": data},
        indent=2,
        ensure_ascii=False,
    )


def error_envelope(command: str, error: VmshareError) -> str:
    data: dict[str, Any] = {
        "message": redact(error.message),
        "hint": error.hint,
        "exit_code": int(error.exit_code),
    }
    undone = getattr(error, "undone", None)
    if undone is not None:
        data["undone"] = undone
        data["undo_failures"] = getattr(error, "undo_failures", [])
    return envelope(command, {"error": data}, ok=False)


def print_error(console: Console, error: VmshareError) -> None:
    console.print(Text.assemble(("error: ", "bold red"), redact(error.message)))
    if error.hint:
        console.print(Text.assemble(("hint: ", "bold"), error.hint))


def plan_view(plan: Plan) -> list[Any]:
    """Renderables for a plan: choices, then steps grouped by layer, then blockers."""
    out: list[Any] = []
    for choice in plan.choices:
        out.append(
            Text.assemble(
                ("share ", "bold"),
                choice.share,
                " -> ",
                (choice.protocol, "bold cyan"),
                f": {choice.reason}; {choice.semantics}",
            )
        )
        out += [Text.assemble(("  warning: ", "yellow"), w) for w in choice.warnings]
    out += [Text.assemble(("note: ", "bold"), note) for note in plan.notes]
    if plan.empty:
        out.append(Text("Nothing to do: everything is already in place.", style="green"))
    else:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("#", justify="right")
        table.add_column("layer")
        table.add_column("step")
        table.add_column("why", style="dim")
        for index, step in enumerate(plan.steps, 1):
            table.add_row(str(index), step.layer, Text(step.summary), Text(step.reason or ""))
        out.append(table)
    out += [Text.assemble(("blocked: ", "bold red"), b) for b in plan.blockers]
    return out


def records_table(records: Iterable[ShareRecord]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("share", "vm", "guest path", "host path", "protocol", "mode"):
        table.add_column(column)
    for r in records:
        table.add_row(
            Text(r.label),
            Text(r.vm),
            Text(r.target),
            Text(r.source),
            r.protocol,
            "ro" if r.readonly else "rw",
        )
    return table


def health_table(health: Iterable[ShareHealth]) -> Table:
    from vmshare.status import LAYERS

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("share")
    for layer in LAYERS:
        table.add_column(layer)
    table.add_column("problems")
    for h in health:
        cells = [Text(v, style=MARKS.get(v, "")) for v in (h.checks[layer] for layer in LAYERS)]
        table.add_row(Text(h.label), *cells, Text("; ".join(h.problems)))
    return table


def checks_table(checks: Iterable[Check]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("check", "status", "detail", "what to do"):
        table.add_column(column)
    for c in checks:
        table.add_row(
            c.name, Text(c.status, style=MARKS[c.status]), Text(c.detail), Text(c.hint or "")
        )
    return table
