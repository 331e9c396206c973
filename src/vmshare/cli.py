"""The vmshare command line: parse, call vmshare.core, render. The only module that prints or exits.

Heavy modules (pydantic models, backends, SDKs) are imported inside the commands, so that
``vmshare --help`` starts fast and imports no hypervisor SDK.
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from vmshare import __version__
from vmshare.errors import ExitCode, UsageError, VmshareError, unknown

if TYPE_CHECKING:
    from vmshare.core import Confirm, Result
    from vmshare.plan.model import Plan
    from vmshare.plan.step import Step

EXIT_CODES = """Exit codes: 0 success · 1 failure · 2 usage or spec error, or a blocked plan ·
3 failed and rolled back · 4 failed and the rollback was incomplete ·
5 changes pending (`plan --exit-code`) · 6 some VMs failed (each rolled back), the others done ·
130 interrupted."""

# The choices of spec.BackendName (then its aliases) and spec.ProtocolName, spelled out here so
# that parsing the command line imports no pydantic (a unit test keeps them equal).
BACKENDS = ("libvirt", "vsphere", "vmware-desktop", "virtualbox", "hyperv", "vmware")
PROTOCOLS = ("auto", "native", "virtiofs", "9p", "vboxsf", "hgfs", "nfs", "smb")

app = typer.Typer(
    name="vmshare",
    help=(
        "Share a host directory into a virtual machine, the same way on every hypervisor.\n\n"
        "Shows a plan before it changes anything, undoes exactly what it did.\n\n" + EXIT_CODES
    ),
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Show the plan; change nothing. Exits 2 if it is blocked."),
]
RestartOpt = Annotated[
    bool,
    typer.Option(
        "--restart",
        help="Allow vmshare to restart (or start) the VM when a change needs it, or stop it "
        "around a change it must be off for and start it again (graceful shutdown first).",
    ),
]
YesOpt = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Do not ask before removing or replacing shares (needed without a terminal).",
    ),
]
SpecFileOpt = Annotated[
    Path, typer.Option("--file", "-f", help="Spec file (TOML).", show_default=True)
]


def _choice(kind: str, choices: tuple[str, ...]) -> Any:
    """An option callback: a value outside ``choices`` fails at once, naming the closest."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(unknown(kind, value, choices))
        return value

    return check


def _complete(choices: tuple[str, ...]) -> Any:
    return lambda incomplete: [c for c in choices if c.startswith(incomplete)]


ProtocolOpt = Annotated[
    str,
    typer.Option(
        "--protocol",
        "-p",
        metavar="PROTOCOL",
        callback=_choice("protocol", PROTOCOLS),
        autocompletion=_complete(PROTOCOLS),
        help=f"{' | '.join(PROTOCOLS)}. auto picks the best and says why.",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        metavar="BACKEND",
        callback=_choice("backend", BACKENDS),
        autocompletion=_complete(BACKENDS),
        help=f"{' | '.join(BACKENDS)}; default: the VM's [vm.NAME] table in host.toml, else "
        "libvirt. This version has libvirt and vsphere.",
    ),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"vmshare {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    pass


def _store() -> Any:
    from vmshare.state import StateStore

    return StateStore()


def _progress(json_out: bool) -> Any:
    """Step-by-step progress on stderr, silent with --json. On a terminal a spinner shows the
    running step; elsewhere (CI logs) a line when each step starts too, so a step that hangs
    is visible."""
    if json_out:
        return None
    status = err.status("") if err.is_terminal else None
    running: dict[str, str] = {}  # VM -> its running step: several at once with --parallel
    vms: set[str] = set()

    def report(event: str, step: Step) -> None:
        vms.add(step.vm)
        # with several VMs at work, each line says which VM it is about
        summary = step.summary if len(vms) < 2 else f"{step.vm}: {step.summary}"
        if event == "start":
            running[step.vm] = summary
            if status is not None:
                more = f" (+{len(running) - 1} VM(s))" if len(running) > 1 else ""
                status.update(Text(summary + more))
                status.start()
            else:
                err.print(Text.assemble(("… ", "dim"), summary))
            return
        running.pop(step.vm, None)
        if status is not None:
            status.stop()
        if event == "done":
            err.print(Text.assemble(("✓ ", "green"), summary))
        elif event == "failed":
            err.print(Text.assemble(("✗ ", "red"), summary))
        elif event == "undo":  # the step that takes a change back, e.g. "unmount /mnt/src"
            err.print(Text.assemble(("↶ ", "yellow"), summary, (" (rolling back)", "yellow")))
        elif event == "redo":
            err.print(Text.assemble(("↷ ", "yellow"), summary, (" (restoring)", "yellow")))
        if status is not None and running:
            status.update(Text(next(reversed(running.values()))))
            status.start()

    return report


def _interactive() -> bool:
    return sys.stdin.isatty() and err.is_terminal


def _confirmer(
    command: str, *, yes: bool, json_out: bool, preview: str, several_only: bool = False
) -> Confirm:
    """What the CLI does between planning and the first change: print the protocol choices
    (so they come before the steps' progress) and, when the plan removes or replaces shares,
    ask at a terminal; without one, refuse unless --yes."""

    def confirm(plan: Plan) -> bool:
        from vmshare import render

        if not json_out:
            for item in render.plan_head(plan):
                out.print(item)
        removes = plan.removes
        if yes or not removes or (several_only and len(removes) < 2):
            return True
        listed = ", ".join(removes)
        what = "remove" if command in ("remove", "prune") else "remove or replace"
        if json_out or not _interactive():
            raise UsageError(
                f"{command} would {what} {len(removes)} share(s) ({listed}); "
                "refusing without a terminal to ask: nothing changed",
                hint=f"see the plan with `{preview}`, then run the command again with --yes",
            )
        out.print(render.steps_table(plan))
        from rich.prompt import Confirm as Ask

        try:
            return Ask.ask(
                f"{what.capitalize()} {len(removes)} share(s) ({listed})?",
                console=err,
                default=False,
            )
        except EOFError:
            return False

    return confirm


def _rerun(*extra: str) -> str:
    """This command line again (as typed, without --yes/--json) plus ``extra``: for hints."""
    args = [a for a in _ARGV if a not in ("--yes", "-y", "--json")]
    return shlex.join(["vmshare", *args, *extra])


_ARGV: list[str] = []


def _show_result(command: str, result: Result, json_out: bool, *, exit_code: bool = False) -> None:
    """Print the result; a blocked plan exits 2, and with ``exit_code`` a plan with changes
    exits 5."""
    from vmshare import render

    blocked = bool(result.plan.blockers)
    pending = not result.plan.empty
    notes = (result.outcome.notes if result.outcome else []) + result.notes
    if json_out:
        data = {
            "dry_run": result.dry_run,
            "changes_pending": result.dry_run and pending,
            "plan": result.plan.model_dump(mode="json", exclude={"records"}),
            "done": [s.summary for s in result.outcome.done] if result.outcome else [],
            "notes": notes,
            "saved_to": result.saved_to,
        }
        if result.vms is not None:  # an apply on several VMs in parallel: each VM's result
            data["vms"] = result.vms
        out.print_json(render.envelope(command, data, ok=not blocked))
    else:
        if result.dry_run or result.plan.empty:
            for item in render.plan_view(result.plan):
                out.print(item)
        else:  # the plan's choices and notes were printed before the steps ran
            assert result.outcome is not None
            count = len(result.outcome.done)
            summary = (
                f"Removed: {count} step(s) undone; host files untouched."
                if command == "remove"
                else f"Done: {count} step(s) applied."
            )
            if result.vms is not None:
                summary = summary[:-1] + f" on {len(result.vms)} VMs in parallel."
            out.print(Text(summary, style="green"))
        for note in notes:
            out.print(Text.assemble(("note: ", "bold"), note))
        if result.dry_run:
            out.print(Text("Dry run: nothing changed.", style="dim"))
    if blocked:
        raise typer.Exit(int(ExitCode.USAGE))
    if exit_code and pending:
        raise typer.Exit(int(ExitCode.CHANGES_PENDING))


@app.command()
def add(
    source: Annotated[
        str, typer.Argument(metavar="SRC", help="Host directory to share.", show_default=False)
    ],
    vm_target: Annotated[
        str, typer.Argument(metavar="VM:DST", help="VM name (or UUID) and absolute guest path.")
    ],
    protocol: ProtocolOpt = "auto",
    readonly: Annotated[bool, typer.Option("--readonly", help="Share read-only.")] = False,
    owner: Annotated[
        str | None,
        typer.Option("--owner", metavar="UID:GID", help="Owner files appear with (nfs, smb)."),
    ] = None,
    mount_option: Annotated[
        list[str] | None,
        typer.Option(
            "--mount-option",
            "-o",
            metavar="OPT",
            help="Extra guest mount option (repeatable, or comma-separated).",
        ),
    ] = None,
    backend: BackendOpt = None,
    connection: Annotated[
        str | None,
        typer.Option(
            "--connection",
            "-c",
            metavar="URI",
            help="libvirt connection URI (default qemu:///system). Other backends take their "
            "settings from a [vm.NAME] table in a spec file.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="A short name for the share, unique per VM."),
    ] = None,
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
            help="Replace a share vmshare already made at DST with other settings (asks "
            "first); if the new share fails, the old one is restored.",
        ),
    ] = False,
    restart: RestartOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    save: Annotated[
        Path | None,
        typer.Option("--save", metavar="FILE", help="Also record the share in this spec file."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Share SRC into a VM at DST, now: host folder, device, guest mount, fstab.

    Examples:

        vmshare add ~/src devvm:/mnt/src

        vmshare add ./data devvm:/data --readonly --dry-run

        vmshare add ~/src devvm:/mnt/src --save vmshare.toml
    """
    from vmshare import core
    from vmshare.spec import Spec, load_host_settings, shorthand

    share, vm = shorthand(
        source,
        vm_target,
        backend=backend,
        connection=connection,
        known=load_host_settings().vm,
        protocol=protocol,
        readonly=readonly,
        owner=owner,
        mount_options=mount_option or [],
        name=name,
        create=create,
        persist=not no_persist,
    )
    spec = Spec(vm={vm.name: vm}, share=[share])
    saved_text = None
    if save:
        from vmshare import specfile  # tomlkit: only to edit a spec file

        saved_text = specfile.prepare_save(save, share, vm)
    preview = _rerun("--dry-run")
    result = core.apply_shares(
        spec,
        "cli",
        _store(),
        allow_restart=restart,
        replace=replace,
        dry_run=dry_run,
        progress=_progress(json_out),
        confirm=_confirmer("add", yes=yes, json_out=json_out, preview=preview),
        preview=preview,
    )
    if save and saved_text is not None and not dry_run:
        from vmshare import specfile

        specfile.write_spec(save, saved_text)
        result.saved_to = str(save)
        result.notes.append(f"recorded in {save}")
    _show_result("add", result, json_out)


@app.command()
def remove(
    shares: Annotated[
        list[str],
        typer.Argument(
            metavar="VM:DST|NAME|VM",
            help="Shares to remove; a VM's name removes every share vmshare made in it.",
        ),
    ],
    restart: RestartOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    save: Annotated[
        Path | None,
        typer.Option("--save", metavar="FILE", help="Also drop the shares from this spec file."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Undo every layer of shares (fstab, mount, device, folders vmshare made). Aliases: rm, umount.

    Removing more than one share, or every share of a VM, shows the plan and asks first.
    Host files are never touched.

    Examples: vmshare remove devvm:/mnt/src · vmshare remove devvm --yes
    """
    from vmshare import core

    store = _store()
    state = store.load()
    # a VM's name removes shares the user did not name one by one: always ask
    whole_vm = any(":" not in ref and state.find(ref) is None for ref in shares)
    result = core.remove_shares(
        shares,
        store,
        allow_restart=restart,
        dry_run=dry_run,
        progress=_progress(json_out),
        confirm=_confirmer(
            "remove",
            yes=yes,
            json_out=json_out,
            preview=_rerun("--dry-run"),
            several_only=not whole_vm,
        ),
    )
    if save and not dry_run and save.exists():
        from vmshare import specfile  # tomlkit: only to edit a spec file

        text, dropped = specfile.without_shares(
            save.read_text(encoding="utf-8"), result.plan.removes
        )
        if dropped:
            specfile.write_spec(save, text)
            result.saved_to = str(save)
            result.notes.append(f"dropped {dropped} share(s) from {save}")
    _show_result("remove", result, json_out)


app.command("rm", hidden=True, help="Alias of remove.")(remove)
app.command("umount", hidden=True, help="Alias of remove.")(remove)


@app.command()
def prune(
    vm: Annotated[
        list[str] | None,
        typer.Option(
            "--vm",
            metavar="VM",
            help="Also look into this VM (repeatable): one vmshare no longer has a record of.",
        ),
    ] = None,
    restart: RestartOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove exports, devices, shared folders, guest mounts and fstab lines that carry
    vmshare's names but belong to no share vmshare has a record of.

    Looks into the VMs of the state and of host.toml (and --vm), and this machine's NFS and
    Samba configs; shows what it found and asks first (--yes for scripts). Shares vmshare
    records, and anything without vmshare's names, are never touched.

    Examples: vmshare prune --dry-run · vmshare prune --vm oldvm --yes
    """
    from vmshare import render
    from vmshare.prune import prune as find_and_prune

    found = find_and_prune(
        _store(),
        vms=vm or [],
        allow_restart=restart,
        dry_run=dry_run,
        progress=_progress(json_out),
        confirm=_confirmer("prune", yes=yes, json_out=json_out, preview=_rerun("--dry-run")),
    )
    result = found.result
    notes = (result.outcome.notes if result.outcome else []) + result.notes
    if json_out:
        data = {
            "dry_run": result.dry_run,
            "plan": result.plan.model_dump(mode="json", exclude={"records"}),
            "done": [s.summary for s in result.outcome.done] if result.outcome else [],
            "looked": found.looked,
            "could_not_look": found.could_not_look,
            "notes": notes,
        }
        out.print_json(render.envelope("prune", data, ok=not result.plan.blockers))
    else:
        if result.plan.empty:
            out.print(Text("Nothing to prune.", style="green"))
        elif result.outcome is None:
            out.print(render.steps_table(result.plan))
            for blocker in result.plan.blockers:
                out.print(Text.assemble(("blocked: ", "bold red"), blocker))
        else:
            count = len(result.outcome.done)
            out.print(Text(f"Pruned: {count} step(s) done; host files untouched.", style="green"))
        for why in found.could_not_look:
            out.print(Text.assemble(("could not look: ", "bold yellow"), why))
        for note in notes:
            out.print(Text.assemble(("note: ", "bold"), note))
        if result.dry_run:
            out.print(Text("Dry run: nothing changed.", style="dim"))
    if result.plan.blockers:
        raise typer.Exit(int(ExitCode.USAGE))


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
    yes: YesOpt = False,
    json_out: JsonOpt = False,
    parallel: Annotated[
        int | None,
        typer.Option(
            "--parallel",
            min=1,
            metavar="N",
            help="Work on up to N VMs at once (default: one per VM, at most 8); each VM rolls "
            "back on its own failure and the others go on (exit 6 if some failed). "
            "1: one VM after the other, as one transaction.",
        ),
    ] = None,
) -> None:
    """Make every share in a spec file real; idempotent (a second run does nothing).

    A plan that removes or replaces shares (changed settings, --prune) is shown and asked
    about first; --yes skips the question. The VMs of the spec are worked on in parallel.

    Example: vmshare apply -f vmshare.toml --prune
    """
    from vmshare import core
    from vmshare.plan.resolve import origin_of
    from vmshare.spec import load_spec

    spec = load_spec(file)
    preview = shlex.join(["vmshare", "plan", "-f", str(file), *(["--prune"] if prune else [])])
    result = core.apply_shares(
        spec,
        origin_of(file),
        _store(),
        allow_restart=restart,
        prune=prune,
        replace=True,  # a spec file states the settings it wants; its plan says what it replaces
        dry_run=dry_run,
        progress=_progress(json_out),
        confirm=_confirmer("apply", yes=yes, json_out=json_out, preview=preview),
        preview=preview,
        parallel=parallel,
    )
    _show_result("apply", result, json_out)


@app.command()
def plan(
    file: SpecFileOpt = Path("vmshare.toml"),
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Include the removals --prune would make."),
    ] = False,
    restart: RestartOpt = False,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help="Exit 5 when apply would change something, 0 when nothing (drift check).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show what `apply` would change, layer by layer, and why; change nothing.

    Exits 2 when the plan is blocked (e.g. needs --restart); with --exit-code, 5 when changes
    are pending.

    Example: vmshare plan -f vmshare.toml --exit-code
    """
    from vmshare import core
    from vmshare.plan.resolve import origin_of
    from vmshare.spec import load_spec

    spec = load_spec(file)
    result = core.plan_shares(
        spec, origin_of(file), _store(), allow_restart=restart, prune=prune, replace=True
    )
    _show_result("plan", result, json_out, exit_code=exit_code)


@app.command("list")
def list_cmd(
    vm: Annotated[str | None, typer.Argument(help="Only this VM.")] = None,
    on_vm: Annotated[
        str | None,
        typer.Option(
            "--vm",
            metavar="VM",
            help="Ask this VM's hypervisor too: also list the shares the VM's own record names "
            "(made on another workstation or by a CI job), and whether each is recorded there.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="With --vm: spec file whose [vm.NAME] table says how to reach a VM that this "
            "workstation's state does not know.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the shares vmshare made (from its state; contacts no hypervisor unless --vm). Alias: ls.

    Examples: vmshare list · vmshare list devvm --json · vmshare list --vm build -f vmshare.toml
    """
    if on_vm is not None or file is not None:
        _list_vm(on_vm or vm, vm, file, json_out)
        return
    # the table needs no models (pydantic would double the start-up); --json prints records whole
    records: list[Any] | None = None if json_out else _listed_without_models(vm)
    if records == []:  # nothing to print: no tables either
        out.print(NO_SHARES)
        return
    from vmshare import render  # no vmshare.core: listing needs only the state file

    if records is None:
        records = _store().load().listed(vm)
    if json_out:
        data = [r.model_dump(mode="json", exclude={"steps"}) for r in records]
        out.print_json(render.envelope("list", data))
    elif records:
        out.print(render.records_table(records))
    else:
        out.print(NO_SHARES)


app.command("ls", hidden=True, help="Alias of list.")(list_cmd)

NO_SHARES = "No shares. Add one with: vmshare add SRC VM:DST"
# `vmshare list` as typed, without arguments: answered without Typer parsing it (Typer 0.29
# imports pydantic to coerce any parameter, even an absent one)
_BARE_LIST = (["list"], ["ls"])


def _listed_without_models(vm: str | None) -> list[Any] | None:
    from vmshare.statefile import STATE_FILE, default_state_dir, listed_shares

    return listed_shares(default_state_dir() / STATE_FILE, vm)


def _list_vm(vm: str | None, argument: str | None, file: Path | None, json_out: bool) -> None:
    """``list --vm VM``: this workstation's shares of VM and those only the VM's record names."""
    from vmshare import render
    from vmshare.status import vm_shares

    if vm is None:
        raise UsageError("--file needs --vm VM", hint="vmshare list --vm VM -f vmshare.toml")
    if argument is not None and argument != vm:
        raise UsageError(
            f"list names two VMs ({argument!r} and --vm {vm!r})", hint="name one VM, with --vm"
        )
    vm_spec = None
    if file is not None:
        from vmshare.spec import load_spec

        vm_spec = load_spec(file).vm_for(vm)
    rows = vm_shares(_store(), vm, vm_spec)
    if json_out:
        out.print_json(render.envelope("list", [r.model_dump(mode="json") for r in rows]))
    elif rows:
        out.print(render.vm_shares_table(rows))
    else:
        out.print(Text(f"No shares in VM {vm}, by this workstation or in the VM's record."))


@app.command()
def status(
    target: Annotated[
        str | None,
        typer.Argument(metavar="[VM|VM:DST|NAME]", help="Only this VM, or only this share."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check every share live: host folder, device, guest mount, fstab, read/write probe.

    Exits 0 when every share is healthy, 1 otherwise, and 1 when the VM or share named does
    not exist or there is no share to check.

    Examples: vmshare status · vmshare status devvm --json
    """
    from vmshare import render
    from vmshare.errors import NotFoundError
    from vmshare.status import share_health

    store = _store()
    record = store.load().find(target) if target else None
    if target and record is None and ":" in target:
        raise NotFoundError(
            f"vmshare has no share {target!r}",
            hint="`vmshare list` shows the shares vmshare made",
        )
    health = share_health(store, record.vm if record else target)
    if record is not None:
        health = [h for h in health if h.key == record.key]
    if not health:
        where = f" in VM {target!r}" if target else ""
        raise NotFoundError(
            f"no share to check{where}",
            hint="`vmshare list` shows the shares vmshare made; `vmshare add` makes one",
        )
    healthy = all(h.healthy for h in health)
    if json_out:
        data = [{**h.model_dump(mode="json"), "healthy": h.healthy} for h in health]
        out.print_json(render.envelope("status", data, ok=healthy))
    else:
        out.print(render.health_table(health))
    if not healthy:
        raise typer.Exit(int(ExitCode.FAILURE))


@app.command()
def doctor(
    vm: Annotated[
        str | None, typer.Argument(help="Also check this VM end to end (guest, mount helpers).")
    ] = None,
    connection: Annotated[
        str | None,
        typer.Option("--connection", "-c", metavar="URI", help="libvirt URI to check."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Spec file whose [vm.NAME] table has the VM's settings."),
    ] = None,
    sudoers: Annotated[
        bool,
        typer.Option(
            "--sudoers",
            help="Print the sudoers lines that let a user run vmshare without a root shell: "
            "exactly the host commands it runs as root, for host.toml's (or --file's) servers.",
        ),
    ] = False,
    user: Annotated[
        str | None,
        typer.Option("--user", metavar="NAME", help="With --sudoers: the user the lines are for."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """What is installed and reachable, and what to do about what is not. Exits 1 on a failure.

    A VM's settings come from --file, else from the shares vmshare made in it. For a vSphere VM
    the server is checked too: TLS, login, version, the VM and its VMware Tools.

    Examples: vmshare doctor · vmshare doctor devvm · vmshare doctor -f vmshare.toml build ·
    vmshare doctor --sudoers > vmshare.sudoers
    """
    from vmshare import render
    from vmshare.doctor import diagnose, diagnose_vm

    spec = None
    if file is not None:
        from vmshare.spec import load_spec

        spec = load_spec(file)
    if sudoers:
        from vmshare.host import privileged
        from vmshare.spec import load_host_settings

        text = privileged.sudoers(load_host_settings(spec), user or privileged.invoking_user())
        if json_out:
            out.print_json(render.envelope("doctor", {"sudoers": text}))
        else:
            sys.stdout.write(text)  # verbatim: a file for visudo, never wrapped
        return
    checks = diagnose(_store(), connection)
    if vm is not None:
        checks += diagnose_vm(_store(), vm, connection, spec)
    failed = any(c.status == "fail" for c in checks)
    if json_out:
        out.print_json(render.envelope("doctor", [c.model_dump() for c in checks], ok=not failed))
    else:
        for item in render.checks_view(checks):
            out.print(item)
    if failed:
        raise typer.Exit(int(ExitCode.FAILURE))


@app.command()
def bench(
    vm_target: Annotated[
        str,
        typer.Argument(
            metavar="VM:DST", help="VM and a guest directory: a share, or any writable dir."
        ),
    ],
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="DIR",
            help="Guest-local directory measured next to DST, in the same run (default /tmp).",
        ),
    ] = None,
    size: Annotated[
        str, typer.Option("--size", metavar="SIZE", help="File size for sequential I/O: 64M, 1G.")
    ] = "64M",
    files: Annotated[
        int, typer.Option("--files", metavar="N", help="Small files to create, stat, delete.")
    ] = 1000,
    runs: Annotated[
        int, typer.Option("--runs", metavar="N", help="Repetitions; figures are medians.")
    ] = 3,
    samples: Annotated[
        int,
        typer.Option(
            "--samples",
            metavar="N",
            help="Host edits timed for visibility (at least 20; 0 skips the test).",
        ),
    ] = 20,
    visibility_timeout: Annotated[
        float,
        typer.Option(
            "--visibility-timeout",
            metavar="SECONDS",
            help="A host edit not seen in the guest within this counts as unseen.",
        ),
    ] = 10.0,
    json_out: JsonOpt = False,
) -> None:
    """Measure a share inside the guest, next to a guest-local directory, in one run.

    Sequential write and read (cold caches), create/stat/delete of small files, a tree walk
    cold and warm, unpacking a source tree and stat'ing every file, and (when the share's
    folder is on this host) how soon a host edit is seen in the guest (p50/p95). Timings are
    taken in the guest, so guest channel round trips are excluded. Everything it writes goes in
    one temp dir in DST, removed at the end (also on error and Ctrl-C). See docs/performance.md.

    Examples: vmshare bench devvm:/mnt/src · vmshare bench devvm:/mnt/src --size 16M --runs 5 --json
    """
    from vmshare.bench import workloads
    from vmshare.bench.command import bench as run
    from vmshare.bench.runner import Config

    try:
        size_mib = workloads.parse_size(size)
    except ValueError as exc:
        raise UsageError(f"--size: {exc}", hint="e.g. --size 64M") from None
    config = Config(
        size_mib=size_mib,
        files=files,
        runs=runs,
        samples=samples,
        visibility_timeout=visibility_timeout,
    )
    report = run(vm_target, _store(), config, baseline=baseline, progress=_bench_progress(json_out))
    if json_out:
        from vmshare import render

        out.print_json(render.envelope("bench", report.as_json()))
        return
    from vmshare.bench.view import report_view

    for item in report_view(report):
        out.print(item)


def _bench_progress(json_out: bool) -> Any:
    """bench's phases on stderr, as the other commands show their steps."""
    if json_out:
        return None
    status = err.status("") if err.is_terminal else None

    def report(event: str, text: str) -> None:
        if event == "start":
            if status is not None:
                status.update(Text(text))
                status.start()
            else:
                err.print(Text.assemble(("… ", "dim"), text))
            return
        if status is not None:
            status.stop()
        err.print(Text.assemble(("✓ ", "green"), text))

    return report


@app.command()
def schema(json_out: JsonOpt = False) -> None:
    """Print the JSON Schema of the spec file (vmshare.toml); with --json, inside the envelope.

    Example: vmshare schema > vmshare.schema.json
    """
    import json

    from vmshare import render
    from vmshare.spec import json_schema

    if json_out:
        out.print_json(render.envelope("schema", json_schema()))
    else:
        out.print_json(json.dumps(json_schema()))


def _without_flag_types(command: Any) -> Any:
    """Help shows no <bool> after a flag (it takes no value) and no <str>/<list[str]> after an
    argument (its name says what it is). Typer 0.29 prints the type unless an option's metavar
    is set (an argument's never), and builds the -h/--help option itself, late."""
    params = list(getattr(command, "params", []))
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        if getattr(param, "param_type_name", "") == "argument":
            param.display_type_rich = lambda ctx: None
    build_help = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = build_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _without_flag_types(sub)
    return command


def _command_name(argv: list[str]) -> str:
    name = next((a for a in argv if not a.startswith("-")), "vmshare")
    return {"rm": "remove", "umount": "remove", "ls": "list"}.get(name, name)


def _usage_error(exc: typer.TyperException) -> VmshareError:
    """A command line that did not parse, as vmshare's own error (for the --json envelope)."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "vmshare"
    return UsageError(message, hint=f"`{command} --help` lists the arguments and options")


def main(argv: list[str] | None = None) -> None:
    """Entry point: the one place errors become messages and exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    _ARGV[:] = args
    json_out = "--json" in args
    try:
        if args in _BARE_LIST:
            list_cmd()
            code = 0
        else:
            command = _without_flag_types(typer.main.get_command(app))
            code = command.main(args=args, prog_name="vmshare", standalone_mode=False)
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
        from vmshare import render

        if json_out:
            out.print_json(render.error_envelope(_command_name(args), _usage_error(exc)))
        else:
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
