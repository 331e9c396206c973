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
    assert json.loads((tmp_path / "s" / "state.json").read_text())["version"] == 1


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

    monkeypatch.setattr(state_mod, "MIGRATIONS", {0: from_zero})
    (tmp_path / "state.json").write_text('{"version": 0, "old_shares": {}}')
    assert StateStore(tmp_path).load().version == 1
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
