"""The vmshare command line: parse, call vmshare.core, render. The only module that prints or exits.

Heavy modules (pydantic models, backends, SDKs) are imported inside the commands, so that
``vmshare --help`` starts fast and imports no hypervisor SDK.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from vmshare import __version__
from vmshare.errors import ExitCode, VmshareError

if TYPE_CHECKING:
    from vmshare.core import Result
    from vmshare.steps import Step

EXIT_CODES = """Exit codes: 0 success · 1 failure · 2 usage or spec error ·
3 failed and rolled back · 4 failed and the rollback was incomplete · 130 interrupted."""

app = typer.Typer(
    name="vmshare",
    help=(
        "Share a host directory into a virtual machine, the same way on every hypervisor.\n\n"
        "Shows a plan before it changes anything, undoes exactly what it did.\n\n" + EXIT_CODES
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")]
RestartOpt = Annotated[
    bool,
    typer.Option(
        "--restart",
        help="Allow vmshare to restart (or start) the VM when a change needs it "
        "(graceful shutdown first).",
    ),
]
SpecFileOpt = Annotated[
    Path, typer.Option("--file", "-f", help="Spec file (TOML).", show_default=True)
]


def _version(value: bool) -> None:
    if value:
        out.print(f"vmshare {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    pass


def _store() -> Any:
    from vmshare.state import StateStore

    return StateStore()


def _progress(json_out: bool) -> Any:
    """Step-by-step progress on stderr: a spinner on the running step (on a terminal), one line
    per finished or undone step. Silent with --json."""
    if json_out:
        return None
    status = err.status("") if err.is_terminal else None

    def report(event: str, step: Step) -> None:
        if event == "start" and status is not None:
            status.update(Text(step.summary))
            status.start()
            return
        if status is not None:
            status.stop()
        if event == "done":
            err.print(Text.assemble(("✓ ", "green"), step.summary))
        elif event == "failed":
            err.print(Text.assemble(("✗ ", "red"), step.summary))
        elif event == "undo":
            err.print(Text.assemble(("↶ undo ", "yellow"), step.summary))
        elif event == "redo":
            err.print(Text.assemble(("↷ restore ", "yellow"), step.summary))

    return report


def _show_result(command: str, result: Result, json_out: bool) -> None:
    from vmshare import render

    if json_out:
        data = {
            "dry_run": result.dry_run,
            "plan": result.plan.model_dump(mode="json", exclude={"records"}),
            "done": [s.summary for s in result.outcome.done] if result.outcome else [],
            "notes": (result.outcome.notes if result.outcome else []) + result.notes,
            "saved_to": result.saved_to,
        }
        out.print_json(render.envelope(command, data))
        return
    if result.dry_run or result.plan.empty:
        for item in render.plan_view(result.plan):
            out.print(item)
    else:
        for item in render.plan_view(result.plan.model_copy(update={"steps": []}))[:-1]:
            out.print(item)
        assert result.outcome is not None
        count = len(result.outcome.done)
        summary = (
            f"Removed: {count} step(s) undone; host files untouched."
            if command == "remove"
            else f"Done: {count} step(s) applied."
        )
        out.print(Text(summary, style="green"))
    for note in (result.outcome.notes if result.outcome else []) + result.notes:
        out.print(Text.assemble(("note: ", "bold"), note))


@app.command()
def add(
    source: Annotated[str, typer.Argument(help="Host directory to share.", show_default=False)],
    vm_target: Annotated[
        str, typer.Argument(metavar="VM:DST", help="VM name (or UUID) and absolute guest path.")
    ],
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            "-p",
            help="auto | virtiofs | 9p | nfs | smb | native. auto picks the best and says why.",
        ),
    ] = "auto",
    readonly: Annotated[bool, typer.Option("--readonly", help="Share read-only.")] = False,
    owner: Annotated[
        str | None,
        typer.Option("--owner", metavar="UID:GID", help="Owner files appear with (nfs, smb)."),
    ] = None,
    mount_option: Annotated[
        list[str] | None,
        typer.Option("--mount-option", "-o", help="Extra guest mount option (repeatable)."),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="Hypervisor backend.")] = "libvirt",
    connection: Annotated[
        str | None,
        typer.Option(
            "--connection", "-c", help="Backend connection URI (libvirt: qemu:///system)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A short name for the share.")] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the host directory if missing.")
    ] = False,
    no_persist: Annotated[
        bool,
        typer.Option("--no-persist", help="Mount now only; do not add it to the guest's fstab."),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace a share vmshare already made at DST with other settings; if the new "
            "share fails, the old one is restored.",
        ),
    ] = False,
    restart: RestartOpt = False,
    dry_run: DryRunOpt = False,
    save: Annotated[
        Path | None,
        typer.Option("--save", metavar="FILE", help="Also record the share in this spec file."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Share SOURCE into a VM at DST, now: host folder, device, guest mount, fstab.

    Examples:

        vmshare add ~/src devvm:/mnt/src

        vmshare add ./data devvm:/data --readonly --dry-run

        vmshare add ~/src devvm:/mnt/src --save vmshare.toml
    """
    from vmshare import core, specfile
    from vmshare.spec import Spec, shorthand

    share, vm = shorthand(
        source,
        vm_target,
        backend=backend,
        connection=connection,
        protocol=protocol,
        readonly=readonly,
        owner=owner,
        mount_options=mount_option or [],
        name=name,
        create=create,
        persist=not no_persist,
    )
    spec = Spec(vm={vm.name: vm}, share=[share])
    saved_text = specfile.prepare_save(save, share, vm) if save else None
    result = core.apply_shares(
        spec,
        "cli",
        _store(),
        allow_restart=restart,
        replace=replace,
        dry_run=dry_run,
        progress=_progress(json_out),
    )
    if save and saved_text is not None and not dry_run:
        specfile.write_spec(save, saved_text)
        result.saved_to = str(save)
        result.notes.append(f"recorded in {save}")
    _show_result("add", result, json_out)


@app.command()
def remove(
    share: Annotated[str, typer.Argument(metavar="VM:DST|NAME", help="The share to remove.")],
    restart: RestartOpt = False,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Undo every layer of a share (fstab, mount, device, folders vmshare made).

    Host files are never touched. Example: vmshare remove devvm:/mnt/src
    """
    from vmshare import core

    result = core.remove_share(
        share, _store(), allow_restart=restart, dry_run=dry_run, progress=_progress(json_out)
    )
    _show_result("remove", result, json_out)


@app.command("apply")
def apply_cmd(
    file: SpecFileOpt = Path("vmshare.toml"),
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Remove shares an earlier apply of this file made that it no longer lists.",
        ),
    ] = False,
    restart: RestartOpt = False,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Make every share in a spec file real; idempotent (a second run does nothing).

    Example: vmshare apply -f vmshare.toml --prune
    """
    from vmshare import core
    from vmshare.plan import origin_of
    from vmshare.spec import load_spec

    spec = load_spec(file)
    result = core.apply_shares(
        spec,
        origin_of(file),
        _store(),
        allow_restart=restart,
        prune=prune,
        replace=True,  # a spec file states the settings it wants; its plan says what it replaces
        dry_run=dry_run,
        progress=_progress(json_out),
    )
    _show_result("apply", result, json_out)


@app.command()
def plan(
    file: SpecFileOpt = Path("vmshare.toml"),
    prune: Annotated[
        bool, typer.Option("--prune", help="Include the removals --prune would make.")
    ] = False,
    restart: RestartOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Show what `apply` would change, layer by layer, and why; change nothing.

    Example: vmshare plan -f vmshare.toml --json
    """
    from vmshare import core
    from vmshare.plan import origin_of
    from vmshare.spec import load_spec

    spec = load_spec(file)
    result = core.plan_shares(
        spec, origin_of(file), _store(), allow_restart=restart, prune=prune, replace=True
    )
    _show_result("plan", result, json_out)


@app.command("list")
def list_cmd(
    vm: Annotated[str | None, typer.Argument(help="Only this VM.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the shares vmshare made (from its state; contacts no hypervisor).

    Examples: vmshare list · vmshare list devvm --json
    """
    from vmshare import render  # no vmshare.core: listing needs only the state file

    records = _store().load().listed(vm)
    if json_out:
        data = [r.model_dump(mode="json", exclude={"steps"}) for r in records]
        out.print_json(render.envelope("list", data))
    elif records:
        out.print(render.records_table(records))
    else:
        out.print("No shares. Add one with: vmshare add SRC VM:DST")


@app.command()
def status(
    vm: Annotated[str | None, typer.Argument(help="Only this VM.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check every share live: host folder, device, guest mount, fstab, read/write probe.

    Exits 0 when every share is healthy, 1 otherwise.

    Examples: vmshare status · vmshare status devvm --json
    """
    from vmshare import render
    from vmshare.status import share_health

    health = share_health(_store(), vm)
    healthy = all(h.healthy for h in health)
    if json_out:
        data = [{**h.model_dump(mode="json"), "healthy": h.healthy} for h in health]
        out.print_json(render.envelope("status", data, ok=healthy))
    elif health:
        out.print(render.health_table(health))
    else:
        out.print("No shares.")
    if not healthy:
        raise typer.Exit(int(ExitCode.FAILURE))


@app.command()
def doctor(
    connection: Annotated[
        str | None, typer.Option("--connection", "-c", help="libvirt URI to check.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """What is installed and reachable, and what to do about what is not. Exits 1 on a failure.

    Examples: vmshare doctor · vmshare doctor -c qemu+ssh://host/system --json
    """
    from vmshare import render
    from vmshare.doctor import diagnose

    checks = diagnose(_store(), connection)
    failed = any(c.status == "fail" for c in checks)
    if json_out:
        out.print_json(render.envelope("doctor", [c.model_dump() for c in checks], ok=not failed))
    else:
        out.print(render.checks_table(checks))
    if failed:
        raise typer.Exit(int(ExitCode.FAILURE))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec file (vmshare.toml).

    Example: vmshare schema > vmshare.schema.json
    """
    import json

    from vmshare.spec import json_schema

    out.print_json(json.dumps(json_schema()))


def _command_name(argv: list[str]) -> str:
    return next((a for a in argv if not a.startswith("-")), "vmshare")


def main(argv: list[str] | None = None) -> None:
    """Entry point: the one place errors become messages and exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    json_out = "--json" in args
    try:
        code = app(args=args, prog_name="vmshare", standalone_mode=False)
    except VmshareError as exc:
        from vmshare import render

        if json_out:
            out.print_json(render.error_envelope(_command_name(args), exc))
        else:
            render.print_error(err, exc)
        sys.exit(int(exc.exit_code))
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except typer.TyperException as exc:  # the command line itself did not parse
        exc.show()  # type: ignore[attr-defined]
        sys.exit(int(ExitCode.USAGE))
    except Exception as exc:  # a bug: say so in one line, trace only on request
        if os.environ.get("VMSHARE_DEBUG"):
            traceback.print_exc()
        err.print(Text.assemble(("internal error: ", "bold red"), f"{type(exc).__name__}: {exc}"))
        err.print("hint: rerun with VMSHARE_DEBUG=1 for a traceback and report it")
        sys.exit(int(ExitCode.FAILURE))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
