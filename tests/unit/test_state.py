import json
import threading
import time
from pathlib import Path

import pytest

from vmshare import state as state_mod
from vmshare.errors import LockTimeout, StateError
from vmshare.plan.removal import removal_plan
from vmshare.state import State, StateStore


def test_missing_state_is_empty(tmp_path):
    assert StateStore(tmp_path / "s").load().shares == {}


def test_save_is_atomic_private_and_keeps_the_previous_version(tmp_path):
    store = StateStore(tmp_path / "s")
    store.save(State())
    store.save(State())
    assert (tmp_path / "s" / "state.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "s" / "state.json.vmshare-bak").exists()
    assert not list((tmp_path / "s").glob("*.tmp"))
    saved = json.loads((tmp_path / "s" / "state.json").read_text())
    assert saved["version"] == state_mod.STATE_VERSION


def test_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path / "x"))
    assert StateStore().directory == tmp_path / "x"


def test_damaged_and_newer_files_are_clear_errors(tmp_path):
    store = StateStore(tmp_path)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="damaged") as info:
        store.load()
    assert "vmshare-bak" in info.value.hint
    (tmp_path / "state.json").write_text('{"version": 99, "shares": {}}')
    with pytest.raises(StateError, match="version 99"):
        store.load()


def test_migrations_run_in_order(tmp_path, monkeypatch):
    def from_zero(doc):
        return {"version": 1, "shares": doc["old_shares"]}

    monkeypatch.setattr(state_mod, "MIGRATIONS", {**state_mod.MIGRATIONS, 0: from_zero})
    (tmp_path / "state.json").write_text('{"version": 0, "old_shares": {}}')
    assert StateStore(tmp_path).load().version == state_mod.STATE_VERSION
    monkeypatch.setattr(state_mod, "MIGRATIONS", {})
    with pytest.raises(StateError, match="no migration"):
        StateStore(tmp_path).load()


def test_lock_serialises_runs(tmp_path):
    first = StateStore(tmp_path, lock_timeout=5)
    second = StateStore(tmp_path, lock_timeout=0.2)
    events = []
    with first.locked():
        with pytest.raises(LockTimeout, match="another vmshare run"), second.locked():
            pass

        def later():
            with StateStore(tmp_path, lock_timeout=5).locked():
                events.append("second")

        thread = threading.Thread(target=later)
        thread.start()
        time.sleep(0.3)
        events.append("first done")
    thread.join()
    assert events == ["first done", "second"]


def test_a_version_1_file_loads_with_no_pending_steps(tmp_path):
    record = {
        "key": "vm:/mnt/x",
        "vm": "vm",
        "vm_spec": {"name": "vm"},
        "source": "/srv/x",
        "target": "/mnt/x",
        "protocol": "virtiofs",
        "tag": "vmshare-0",
        "readonly": False,
        "requested": {},
        "origin": "cli",
        "created": "2026-01-01T00:00:00+00:00",
        "steps": [],
    }
    document = {"version": 1, "shares": {"vm:/mnt/x": record}}
    (tmp_path / "state.json").write_text(json.dumps(document))
    loaded = StateStore(tmp_path).load()
    assert loaded.version == state_mod.STATE_VERSION and loaded.shares["vm:/mnt/x"].pending == []


def test_temp_files_of_an_interrupted_write_go_with_the_next_locked_run(tmp_path):
    store = StateStore(tmp_path)
    store.save(State())
    stale = tmp_path / ".state.json.abc123.tmp"
    stale.write_text("{half")
    other = tmp_path / "notes.tmp"
    other.write_text("mine")
    with store.locked():
        pass
    assert not stale.exists() and other.exists()


STATE_FROM_MAIN = Path(__file__).parent / "data" / "state-v2-main-8e8ac77.json"


def test_a_state_file_written_by_main_before_the_generic_verbs_migrates(tmp_path):
    """The file was written by vmshare at commit 8e8ac77 (state version 2): libvirt's own verbs
    (attach_filesystem with live/config, add_shared_memory), a 9p share and a pending step."""
    (tmp_path / "state.json").write_bytes(STATE_FROM_MAIN.read_bytes())
    state = StateStore(tmp_path).load()
    assert state.version == state_mod.STATE_VERSION == 3
    src, docs, wip = (state.shares[f"testvm:/mnt/{n}"] for n in ("src", "docs", "wip"))
    hypervisor = [(s.action, s.args) for s in src.steps if s.layer == "hypervisor"]
    assert hypervisor[0] == ("prepare", {"prerequisite": "shared-memory"})
    action, args = hypervisor[1]
    assert action == "attach_share" and args["protocol"] == "virtiofs"
    assert args["scopes"] == ["persistent"] and "live" not in args and "driver" not in args
    attach = next(s for s in src.steps if s.action == "attach_share")
    assert attach.undo is not None and attach.undo.action == "detach_share"
    assert attach.undo.args == {"tag": src.tag, "scopes": ["running", "persistent"]}
    assert docs.detach_restarts and not src.detach_restarts  # 9p leaves only at a restart
    assert [s.action for s in wip.pending] == ["attach_share"]
    assert wip.pending[0].args["scopes"] == ["running", "persistent"]
    # what the old journal undoes is now a plan of generic verbs that the executor accepts
    steps = removal_plan([src, docs, wip]).steps
    assert {s.action for s in steps if s.layer == "hypervisor"} == {"detach_share"}
    assert removal_plan([docs], allow_restart=True).steps[-1].action == "restart"
