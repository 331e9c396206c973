import json
import threading
import time

import pytest

from vmshare import state as state_mod
from vmshare.errors import LockTimeout, StateError
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
    assert loaded.version == 2 and loaded.shares["vm:/mnt/x"].pending == []


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
