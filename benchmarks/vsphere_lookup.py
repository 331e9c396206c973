"""vSphere lookup and planning with 1 and with 1,000 simulated VMs: does either grow with the
inventory? Medians of several runs each, and the ratio 1000/1 measured in the same run.

Run from the repo: .venv/bin/python benchmarks/vsphere_lookup.py [--runs 15] [--vms 1000]

What is timed, in this process (no interpreter start-up), against tests/testbed/vcsim:
- lookup by name: ``VsphereBackend._vm(name)`` on an open session, its per-session cache
  cleared (the index of names: one ContainerView and one RetrievePropertiesEx, plus
  continuation pages). Most of it is pyVmomi parsing the answer, about 0.06 ms per VM here.
- lookup by UUID: the same for a BIOS UUID (the index then carries the UUIDs too: one read of
  three properties per VM instead of one).
- session+lookup: a new backend, login, ServiceContent, lookup, logout.
- plan: ``core.plan_shares`` (what `vmshare plan -f` runs after parsing its arguments) of a
  one-share spec, nfs, for the simulated VM that stands for a guest: a new session, login,
  lookup, the VM's facts, the guest probe through the real VMware Tools channel (temp folder,
  StartProgramInGuest, ListProcessesInGuest, file transfers over HTTPS), the exports read,
  the plan resolved.

No guest is booted: the simulator's guest operations are answered by a *local channel*, i.e.
each guest program runs on this machine as a subprocess (read-only: planning only reads
mounts, fstab, folders and the default route). So the guest probe's cost is the Tools channel's
round trips plus local process starts, not a real guest's. The exporter is nfs-ganesha as
host.toml describes it, pointing at files in a temp folder: planning reads its exports file
and needs no running server. The host folder is a temp folder owned by www-data (33:33),
the share's owner; nothing is changed anywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from tests.testbed.vcsim import Vcsim

from vmshare import core
from vmshare.backends.vsphere.backend import VsphereBackend
from vmshare.spec import load_spec
from vmshare.state import StateStore

PASSWORD_ENV = "VMSHARE_BENCH_VC_PASSWORD"  # noqa: S105 - the name of a variable
GUEST_PASSWORD_ENV = "VMSHARE_BENCH_GUEST_PASSWORD"  # noqa: S105 - the name of a variable
OWNER = (33, 33)  # www-data, as in the integration tests


def local_exec(
    argv: Sequence[str], stdin: bytes | None, timeout: float
) -> tuple[int, bytes, bytes]:
    """The guest channel's far end: the program runs here."""
    proc = subprocess.run(list(argv), input=stdin or b"", capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def median_ms(action: Callable[[], object], runs: int) -> float:
    action()  # warm-up (imports, first TLS handshake, the simulator's caches)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(vms: int, runs: int, work: Path) -> dict[str, float]:
    with Vcsim(vms=vms, guest_exec=local_exec) as sim:
        os.environ[PASSWORD_ENV] = sim.password
        os.environ[GUEST_PASSWORD_ENV] = sim.guest_password
        source = work / "src"
        source.mkdir(exist_ok=True)
        os.chown(source, *OWNER)  # a root-owned folder is refused for network shares
        ganesha = work / f"ganesha-{vms}"
        ganesha.mkdir()
        host_config = ganesha / "host.toml"
        host_config.write_text(
            '[nfs]\nexporter = "ganesha"\n'
            f'exports_file = "{ganesha / "exports.conf"}"\n'
            f'ganesha_config = "{ganesha / "ganesha.conf"}"\n'
            f'ganesha_pidfile = "{ganesha / "ganesha.pid"}"\n'
        )
        (ganesha / "ganesha.conf").write_text("")
        os.environ["VMSHARE_HOST_CONFIG"] = str(host_config)
        spec_path = work / f"vmshare-{vms}.toml"
        spec_path.write_text(
            f'[vm."{sim.vm}"]\nbackend = "vsphere"\nserver = "{sim.host}:{sim.port}"\n'
            f'user = "{sim.username}"\npassword_env = "{PASSWORD_ENV}"\n'
            f'ca_file = "{sim.ca_file}"\n'
            f'[vm."{sim.vm}".guest]\nlogin_user = "{sim.guest_user}"\n'
            f'login_password_env = "{GUEST_PASSWORD_ENV}"\n'
            f'[[share]]\nsource = "{source}"\nvm = "{sim.vm}"\ntarget = "/mnt/bench"\n'
            f'protocol = "nfs"\nowner = "{OWNER[0]}:{OWNER[1]}"\n'
        )
        spec = load_spec(spec_path)
        settings = spec.vm[sim.vm]
        store = StateStore(work / f"state-{vms}")

        backend = VsphereBackend(settings)  # type: ignore[arg-type]
        try:
            assert backend._vm(sim.vm).obj._moId == sim.vm_ref
            uuid = backend.inspect(sim.vm).uuid
            assert uuid is not None

            def lookup_of(ref: str) -> Callable[[], object]:
                def lookup() -> object:
                    backend._found.clear()  # a backend finds a VM once per session
                    return backend._vm(ref)

                return lookup

            by_name = median_ms(lookup_of(sim.vm), runs)
            by_uuid = median_ms(lookup_of(uuid), runs)
        finally:
            backend.close()

        def session_lookup() -> None:
            fresh = VsphereBackend(settings)  # type: ignore[arg-type]
            try:
                fresh._vm(sim.vm)
            finally:
                fresh.close()

        with_session = median_ms(session_lookup, runs)
        result = core.plan_shares(spec, "file", store)
        summaries = " | ".join(step.summary for step in result.plan.steps)
        assert "127.0.0.1" in summaries and "/mnt/bench" in summaries, summaries
        plan = median_ms(lambda: core.plan_shares(spec, "file", store), runs)
        return {
            "lookup by name": by_name,
            "lookup by UUID": by_uuid,
            "session+lookup": with_session,
            "plan": plan,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--vms", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmshare-bench-") as tmp:
        small = measure(1, args.runs, Path(tmp))
        big = measure(args.vms, args.runs, Path(tmp))
    print(f"medians of {args.runs} runs (after one warm-up), in ms")
    header = f"{'measure':<18}{'1 VM':>10}{f'{args.vms} VMs':>12}{f'{args.vms}/1':>10}"
    print(header)
    for name in small:
        ratio = big[name] / small[name]
        print(f"{name:<18}{small[name]:>10.1f}{big[name]:>12.1f}{ratio:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
