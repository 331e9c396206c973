"""What vmshare prints (render.py, cli.py) with hostile names: user strings go through rich's
Text, never markup, so a VM or share name like ``[/x]`` or ``[red]`` prints as itself (as
markup, ``[/x]`` raised a MarkupError and ``[red]`` vanished)."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rich.console import Console

from tests.property import hostile
from vmshare import render, status
from vmshare.cli import main
from vmshare.doctor import Check

RENDERER = "CLI output"
printable = st.one_of(hostile.nonempty, st.sampled_from(["[/x]", "[red]x", "[bold]", "[link=x]y"]))


def shown(items: list) -> str:
    console = Console(file=io.StringIO(), width=100_000, soft_wrap=True, color_system=None)
    console.print(*items)
    return console.file.getvalue()


@given(name=printable, detail=printable)
@example(name="vm [/x]", detail="[red]gone")
def test_doctor_checks_print_names_as_they_are(name, detail):
    hostile.tally(RENDERER)
    if not (name + detail).isprintable():
        return  # the terminal shows control characters its own way
    out = shown(render.checks_view([Check(name=name, status="fail", detail=detail, hint=detail)]))
    assert name in out and detail in out


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vm=printable)
@example(vm="[/x]")
def test_list_of_a_vm_without_shares_names_it_as_it_is(vm, capsys, monkeypatch, tmp_path):
    hostile.tally(RENDERER)
    if not vm.isprintable() or vm.startswith("-") or "/" in vm or ":" in vm:
        return
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(status, "vm_shares", lambda *args, **kwargs: [])
    with pytest.raises(SystemExit) as info:
        main(["list", "--vm", vm])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert f"No shares in VM {vm}," in out.replace("\n", "")
