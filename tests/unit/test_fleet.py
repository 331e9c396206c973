"""`apply` on many VMs at once: bounded workers, a failing or slow VM on its own, Ctrl-C, and
journals that several VMs (and processes) write into one state file. Real executor, real
StateStore, the core's own commands; the hypervisor, host and guests are vmshare's FakeWorld."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from vmshare import core, fleet, render
from vmshare.apply import Journal, execute
from vmshare.backends.fake import FakeBackend, FakeGuest, FakeVm, FakeWorld
from vmshare.backends.libvirt import capabilities as libvirt
from vmshare.errors import ApplyFailed, ExitCode, FleetFailed, GuestError
from vmshare.plan.resolve import resolve
from vmshare.spec import parse_spec
from vmshare.state import ShareRecord, State, StateStore

SRC = Path(__file__).resolve().parent  # any folder that exists: virtiofs shares it as it is


class Guest(FakeGuest):
    """A guest whose mount takes ``delay`` seconds, may fail, may wait for ``gate``, and counts
    how many guests mount at the same time."""

    active = 0
    most = 0
    counter = threading.Lock()

    def __init__(self, name: str, delay: float = 0.0) -> None:
        super().__init__()
        self.name, self.delay = name, delay
        self.fail = False
        self.interrupt = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.finished = 0.0

    def mount(self, *args, **kwargs):
        cls = type(self)
        with cls.counter:
            cls.active += 1
            cls.most = max(cls.most, cls.active)
        try:
            self.entered.set()
            if self.interrupt:
                os.kill(os.getpid(), signal.SIGINT)  # a worker thread: the main thread hears it
            if self.gate is not None:
                assert self.gate.wait(30)
            time.sleep(self.delay)
            if self.fail:
                raise GuestError(f"mount in {self.name} broke")
            super().mount(*args, **kwargs)
        finally:
            with cls.counter:
                cls.active -= 1

    def probe(self, target, writable):
        super().probe(target, writable)
        self.finished = time.monotonic()


def world_of(count: int, delay: float = 0.0) -> FakeWorld:
    caps = libvirt.capabilities(
        running=True,
        acpi=True,
        shared_memory_config=True,
        shared_memory_live=True,
        user_networking=False,
    )
    world = FakeWorld(
        FakeBackend(*(FakeVm(f"vm{i}", caps.model_copy(deep=True)) for i in range(count)))
    )
    world.guests = {name: Guest(name, delay) for name in world.backend.vms}
    Guest.active = Guest.most = 0
    return world


def spec_for(world: FakeWorld, source: Path = SRC, create: bool = False):
    text = ""
    for vm in world.backend.vms:
        text += f'[[share]]\nsource = "{source}"\nvm = "{vm}"\ntarget = "/mnt/fleet"\n'
        text += "create = true\n" if create else ""
    return parse_spec(text)


@pytest.fixture
def world_session(monkeypatch, tmp_path):
    """core's Session on a FakeWorld: the core's commands run unchanged over it."""
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(tmp_path / "no-host.toml"))
    holder: dict[str, FakeWorld] = {}

    class WorldSession(core.Session):
        def backend(self, vm):
            return holder["world"].backend

        def host(self, vm):
            return holder["world"].host

        def guest(self, vm):
            return holder["world"].guests[vm]

        def probe_vm(self, vm, targets):
            return holder["world"].probe_vm(vm, targets)

    monkeypatch.setattr(core, "Session", WorldSession)
    return holder


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state", lock_timeout=5)


def apply(world, store, **kw):
    return core.apply_shares(spec_for(world), "/specs/fleet.toml", store, replace=True, **kw)


def test_vms_run_at_most_n_at_once_and_a_slow_vm_holds_no_other_back(world_session, store):
    world = world_session["world"] = world_of(6, delay=0.3)
    world.guests["vm0"].delay = 2.0
    result = apply(world, store, parallel=3)
    assert Guest.most == 3
    assert [r["ok"] for r in result.vms] == [True] * 6
    slow = world.guests["vm0"].finished
    assert all(world.guests[f"vm{i}"].finished < slow for i in range(1, 6))
    state = store.load()
    assert sorted(r.vm for r in state.shares.values()) == [f"vm{i}" for i in range(6)]
    assert all(r.steps and not r.pending for r in state.shares.values())
    assert all(g.mounts for g in world.guests.values())
    # nothing left to do: a re-apply plans no step
    assert apply(world, store, parallel=3).plan.steps == []


def test_a_failing_vm_is_rolled_back_alone_and_all_failures_come_at_the_end(world_session, store):
    world = world_session["world"] = world_of(5, delay=0.1)
    world.guests["vm1"].fail = world.guests["vm3"].fail = True
    with pytest.raises(FleetFailed) as info:
        apply(world, store, parallel=2)
    error = info.value
    assert error.exit_code == ExitCode.PARTIAL == 6
    assert "vm1: " in error.message and "vm3: " in error.message and "2 of 5" in error.message
    ok = {row["vm"]: row["ok"] for row in error.vms}
    assert ok == {"vm0": True, "vm1": False, "vm2": True, "vm3": False, "vm4": True}
    assert '"vms"' in render.error_envelope("apply", error)  # --json carries each VM's result
    for vm in ("vm1", "vm3"):  # rolled back: nothing of its share is left
        assert not world.guests[vm].mounts and not world.backend.vms[vm].live
    for vm in ("vm0", "vm2", "vm4"):
        assert world.guests[vm].mounts
    assert sorted(r.vm for r in store.load().shares.values()) == ["vm0", "vm2", "vm4"]


def test_parallel_1_is_one_transaction_as_before(world_session, store):
    world = world_session["world"] = world_of(3)
    world.guests["vm1"].fail = True
    with pytest.raises(ApplyFailed) as info:
        apply(world, store, parallel=1)
    assert info.value.exit_code == ExitCode.ROLLED_BACK
    assert world.empty() and store.load().shares == {}


def test_ctrl_c_stops_every_worker_and_rolls_back_each_vm(world_session, store):
    world = world_session["world"] = world_of(6, delay=0.3)
    world.guests["vm1"].interrupt = True
    with pytest.raises(ApplyFailed) as info:
        apply(world, store, parallel=3)
    assert info.value.exit_code == ExitCode.ROLLED_BACK
    assert "interrupted (Ctrl-C)" in info.value.message and "not started" in info.value.message
    started = [row["vm"] for row in info.value.vms if row["started"]]
    assert 1 < len(started) < 6
    assert world.empty() and store.load().shares == {}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_parts_that_create_the_same_host_folder_stay_one_part(tmp_path):
    world = world_of(3)
    spec = spec_for(world, source=tmp_path / "new", create=True)
    plan = resolve(spec, world.facts(spec, protocols=()), State(), origin="cli")
    parts = fleet.split(plan, State())
    assert [fleet.vms_of(p) for p in parts] == [["vm0", "vm1", "vm2"]]
    other = spec_for(world)
    parts = fleet.split(
        resolve(other, world.facts(other, protocols=()), State(), origin="cli"), State()
    )
    assert [fleet.vms_of(p) for p in parts] == [["vm0"], ["vm1"], ["vm2"]]


def record(key: str, vm: str) -> ShareRecord:
    return ShareRecord(
        key=key,
        vm=vm,
        vm_spec={"name": vm},
        source="/srv",
        target="/mnt/x",
        protocol="virtiofs",
        tag="t",
        readonly=False,
        requested={},
        origin="cli",
        created="2026-01-01T00:00:00+00:00",
    )


def test_two_vms_journals_written_concurrently_both_survive(tmp_path):
    """Two runs (a store each, as two processes have) journal two VMs' steps into one state
    file at once: every write of both is there at the end."""
    world = world_of(2)
    spec = spec_for(world)
    state = State()
    plan = resolve(spec, world.facts(spec, protocols=()), state, origin="cli")
    parts = fleet.split(plan, state)
    errors: list[BaseException] = []

    def run(part, rounds=10):
        try:
            store = StateStore(tmp_path, lock_timeout=30)
            for _ in range(rounds):  # apply, then forget the share again: many journal writes
                journal = Journal(store, State(), part)
                execute(part, world, journal)
                for step in reversed(part.steps):
                    journal.undone(step) if step.undo else None
            execute(part, world, Journal(store, State(), part))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    shares = StateStore(tmp_path).load().shares
    assert sorted(r.vm for r in shares.values()) == ["vm0", "vm1"]
    for part in parts:
        (key,) = part.records
        assert [s.action for s in shares[key].steps] == [s.action for s in part.steps]


def test_many_writers_lose_no_record(tmp_path):
    stores = [StateStore(tmp_path, lock_timeout=30) for _ in range(4)]

    def write(index):
        for round_ in range(40):
            key = f"vm{index}:/mnt/{round_}"
            stores[index].writer.commit({key: record(key, f"vm{index}")})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(StateStore(tmp_path).load().shares) == 4 * 40


PROBE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from vmshare.errors import LockTimeout
    from vmshare.state import StateStore
    store = StateStore(Path(sys.argv[1]), lock_timeout=1)
    try:
        with store.locked() if sys.argv[2] == "state" else store.vms_locked([sys.argv[2]]):
            print("got it")
    except LockTimeout as exc:
        print(exc.message)
    """
)


def other_process(store: StateStore, lock: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(core.__file__).parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(store.directory), lock],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return proc.stdout.strip()


@pytest.mark.parametrize("parallel", [1, 4])
def test_the_state_lock_is_free_during_a_slow_step_and_only_that_vm_is_locked(
    world_session, store, parallel
):
    world = world_session["world"] = world_of(2)
    gate = world.guests["vm1"].gate = threading.Event()
    results: list[object] = []
    runner = threading.Thread(target=lambda: results.append(apply(world, store, parallel=parallel)))
    runner.start()
    try:
        assert world.guests["vm1"].entered.wait(30)  # vm1's mount is under way, and waits
        assert other_process(store, "state") == "got it"
        assert other_process(store, "vm9") == "got it"
        assert "another vmshare run is still changing VM 'vm1'" in other_process(store, "vm1")
    finally:
        gate.set()
        runner.join(60)
    assert results and sorted(r.vm for r in store.load().shares.values()) == ["vm0", "vm1"]


def test_one_vms_consecutive_host_steps_run_as_one_against_other_vms(tmp_path, store):
    """An SMB account and the share that uses it are made with no other VM's host step between
    them (another VM's rollback removes the account once no share uses it)."""
    from vmshare.facts import Capabilities
    from vmshare.plan.network import HostServers
    from vmshare.spec import HostSettings, SmbHost

    world = FakeWorld(
        FakeBackend(*(FakeVm(f"vm{i}", Capabilities(network=["smb"])) for i in range(4)))
    )
    text = ""
    for i in range(4):
        folder = tmp_path / f"src{i}"
        folder.mkdir()
        os.chown(folder, 33, 33)
        text += f'[[share]]\nsource = "{folder}"\nvm = "vm{i}"\ntarget = "/mnt/s"\n'
        text += 'protocol = "smb"\nowner = "33:33"\n'
    spec = parse_spec(text)
    servers = HostServers.from_settings(
        HostSettings(smb=SmbHost(exporter="samba", include_file=str(tmp_path / "smb.conf")))
    )
    plan = resolve(spec, world.facts(spec), State(), origin="cli", servers=servers)
    host, calls = world.host, []

    class SlowHost:
        def __getattr__(self, action):
            def call(**kwargs):
                calls.append((threading.current_thread().name, action))
                time.sleep(0.05)  # long enough for another worker to come in between
                return getattr(host, action)(**kwargs)

            return call

    class Runtime:
        def layer(self, layer, vm):
            return SlowHost() if layer == "host" else world.layer(layer, vm)

    parts = fleet.split(plan, State())
    result = fleet.run_parts(parts, State(), store, Runtime, parallel=4)
    assert all(r.ok for r in result.results)
    actions = [action for _, action in calls]
    assert actions == ["smb_account", "smb_share"] * 4
    assert all(calls[i][0] == calls[i + 1][0] for i in range(0, 8, 2))
