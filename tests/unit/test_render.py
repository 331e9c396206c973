from factories import fresh_vm, spec_of
from rich.console import Console
from test_plan import plan_for

from vmshare import render
from vmshare.errors import ApplyFailed
from vmshare.spec import Spec, shorthand


def text_of(items):
    console = Console(record=True, width=300, color_system=None)
    for item in items:
        console.print(item)
    return console.export_text()


def test_plan_view_prints_hostile_paths_literally():
    hostile = "/srv/[bold red]x[/] $(id) ‘q’"
    share, _ = shorthand(hostile, "testvm:/mnt/x")
    spec = Spec(share=[share])
    shown = text_of(render.plan_view(plan_for(spec, fresh_vm())))
    assert "[bold red]x[/]" in shown
    assert "virtiofs" in shown and "guest" in shown and "hypervisor" in shown


def test_empty_plan_says_nothing_to_do():
    from factories import applied_state, applied_vm

    spec = spec_of("/srv/x testvm:/mnt/x")
    plan = plan_for(spec, applied_vm(spec), applied_state(spec))
    assert "Nothing to do" in text_of(render.plan_view(plan))


def test_blockers_are_shown():
    spec = spec_of("/srv/x testvm:/mnt/x readonly=true")
    assert "blocked:" in text_of(render.plan_view(plan_for(spec, fresh_vm())))


def test_error_envelope_carries_rollback_details():
    import json

    error = ApplyFailed("boom", hint="h", undone=["detach"], undo_failures=[])
    doc = json.loads(render.error_envelope("add", error))
    assert doc == {
        "vmshare": 1,
        "command": "add",
        "ok": False,
        "data": {
            "error": {
                "message": "boom",
                "hint": "h",
                "exit_code": 3,
                "undone": ["detach"],
                "undo_failures": [],
            }
        },
    }
