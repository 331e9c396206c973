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

from vmshare.secret_value import redact

if TYPE_CHECKING:
    from vmshare.doctor import Check
    from vmshare.errors import VmshareError
    from vmshare.plan.model import Plan
    from vmshare.state import ShareRecord
    from vmshare.statefile import ListedShare
    from vmshare.status import ShareHealth, VmShare

ENVELOPE_VERSION = 1
LAYER_TITLES = {"host": "host", "hypervisor": "hypervisor", "guest": "guest"}
MARKS = {
    "ok": "green",
    "warn": "yellow",
    "fail": "red",
    "missing": "red",
    "failed": "red",
    "info": "dim",
    "recorded": "green",
}


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
    vms = getattr(error, "vms", None)
    if vms:  # an apply on several VMs: each VM's result
        data["vms"] = vms
    return envelope(command, {"error": data}, ok=False)


def print_error(console: Console, error: VmshareError) -> None:
    console.print(Text.assemble(("error: ", "bold red"), redact(error.message)))
    if error.hint:
        console.print(Text.assemble(("hint: ", "bold"), error.hint))


def plan_head(plan: Plan) -> list[Any]:
    """The protocol chosen for each share and why, its warnings, and the plan's notes."""
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
    return out


def steps_table(plan: Plan) -> Table:
    """One row per step; the reason goes under its step (dim) rather than in a column of its
    own, so a row stays readable in 80 columns."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("layer", no_wrap=True)
    table.add_column("step", overflow="fold")
    for index, step in enumerate(plan.steps, 1):
        cell = Text(step.summary)
        if step.reason:
            cell.append("\nwhy: " + step.reason, style="dim")
        if step.script:
            cell.append("\n" + step.script, style="cyan")
        table.add_row(str(index), step.layer, cell)
    return table


def plan_view(plan: Plan) -> list[Any]:
    """Renderables for a plan: choices, then its steps in order, then blockers."""
    out = plan_head(plan)
    if plan.empty:
        out.append(Text("Nothing to do: everything is already in place.", style="green"))
    else:
        out.append(steps_table(plan))
    out += [Text.assemble(("blocked: ", "bold red"), b) for b in plan.blockers]
    return out


def records_table(records: Iterable[ShareRecord | ListedShare]) -> Table:
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


def vm_shares_table(rows: Iterable[VmShare]) -> Table:
    """``list --vm``: each share, who made it and whether the VM's record of it is there."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("share", "guest path", "host path", "protocol", "mode", "made on", "record"):
        table.add_column(column)
    for r in rows:
        made = "here" if r.made == "here" else r.host or "elsewhere"
        table.add_row(
            Text(r.label),
            Text(r.target),
            Text(r.source),
            Text(r.protocol),
            "ro" if r.readonly else "rw",
            Text(made, style="" if r.made == "here" else "yellow"),
            Text(r.record, style=MARKS.get(r.record, "")),
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


def checks_view(checks: Iterable[Check]) -> list[Any]:
    """The checks as a table, then each hint in full below it (a hint is never cut short)."""
    checks = list(checks)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("check", "status", "detail"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(Text(c.name), Text(c.status, style=MARKS.get(c.status, "")), Text(c.detail))
    out: list[Any] = [table]
    hints = [c for c in checks if c.hint]
    if hints:
        out.append(Text("\nWhat to do:", style="bold"))
        out += [Text.assemble(("  " + c.name + ": ", "bold"), c.hint or "") for c in hints]
    return out
