"""``vmshare bench VM:DST``: find the VM and its guest channel as the other commands do, learn
from vmshare's record whether DST's folder is on this host, and run the benchmark."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vmshare.bench import workloads
from vmshare.bench.runner import Config, Progress, run_bench
from vmshare.bench.stats import Report
from vmshare.core import Session
from vmshare.errors import NotFoundError, UsageError
from vmshare.spec import load_host_settings, normal_guest_path, vm_settings
from vmshare.state import ShareRecord, State, StateStore

DEFAULT_BASELINE = "/tmp"


@dataclass(frozen=True)
class Target:
    vm: str
    dst: str
    record: ShareRecord | None  # the share DST is in, when vmshare made it


def parse_target(ref: str, state: State) -> Target:
    """``VM:DST`` with an absolute guest path, and the share of vmshare's that holds DST."""
    vm, sep, dst = ref.partition(":")
    if not sep or not vm or not dst.startswith("/"):
        raise UsageError(
            f"not VM:DST: {ref!r}", hint="name the VM and an absolute guest path: devvm:/mnt/src"
        )
    try:
        dst = normal_guest_path(dst)
    except ValueError:
        raise UsageError(
            f"{ref!r}: DST must be a directory below / without '..'",
            hint="e.g. devvm:/mnt/src",
        ) from None
    holding = [
        r
        for r in state.listed(vm)
        if dst == r.target or PurePosixPath(dst).is_relative_to(PurePosixPath(r.target))
    ]
    record = max(holding, key=lambda r: len(r.target)) if holding else None
    return Target(vm, dst, record)


def host_folder(target: Target, session: Session) -> tuple[Path | None, str | None]:
    """DST's folder on this host, or why it is not known here."""
    record = target.record
    if record is None:
        return None, "vmshare has no record of a share holding DST"
    if session.host(target.vm) is not session.local_host:
        return None, "the share's folder is on another host"
    relative = PurePosixPath(target.dst).relative_to(PurePosixPath(record.target))
    folder = Path(record.source) / relative
    if not folder.is_dir():
        return None, f"{folder} is not a directory on this host"
    return folder, None


def bench(
    ref: str,
    store: StateStore,
    config: Config,
    *,
    baseline: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Benchmark DST next to a guest-local directory; nothing it makes outlives the run."""
    config.check()
    target = parse_target(ref, store.load())
    record = target.record
    if record is not None and record.readonly:
        raise UsageError(
            f"{record.label} is a read-only share: bench writes files there",
            hint="bench a read-write share, or a guest directory that is not read-only",
        )
    base = baseline or DEFAULT_BASELINE
    if not base.startswith("/"):
        raise UsageError(f"--baseline {base!r} is not an absolute guest path", hint="e.g. /tmp")
    vm_spec = record.vm_spec if record else load_host_settings().vm.get(target.vm)
    session = Session({target.vm: vm_spec or vm_settings(target.vm)}, store)
    try:
        backend = session.backend(target.vm)
        with backend.sdk_errors():
            facts = backend.inspect(target.vm)
        if not facts.exists:
            raise NotFoundError(
                f"VM {target.vm!r} not found on {facts.connection}", hint=facts.find_hint
            )
        if not facts.running:
            raise UsageError(
                f"VM {target.vm!r} is not running: bench runs its workloads in the guest",
                hint=f"start it, then run the command again (e.g. virsh start {target.vm})",
            )
        if session.guest_os(target.vm) != "linux":
            raise UsageError(
                "bench runs in Linux guests only", hint="its workloads are POSIX shell scripts"
            )
        folder, why = host_folder(target, session)
        top, sub, files = workloads.TREE_SHAPE
        dirs, per_dir = workloads.SOURCE_SHAPE
        report = Report(
            target=ref,
            vm=target.vm,
            dst=target.dst,
            baseline=base,
            protocol=record.protocol if record else None,
            host_source=str(folder) if folder else None,
            size_mib=config.size_mib,
            files=config.files,
            tree_entries=workloads.tree_entries((top, sub, files)),
            source_files=dirs * per_dir,
            runs=config.runs,
            load=" ".join(f"{v:.2f}" for v in os.getloadavg()),
        )
        if folder is None:
            report.host_cache = f"not dropped: {why}"
        channel = session.guest(target.vm).channel
        run_bench(channel, report, config, folder, progress)
        if folder is None and config.samples:
            report.visibility_skipped = why
        return report
    finally:
        session.close()
