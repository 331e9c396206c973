"""Whether a host file server runs: the evidence an exporter reads around a reload.

A reload that fails means one of two things: the server does not run (then an entry taken out
of its config is gone for good: nothing serves it, and the next start reads the edited file),
or it runs and refused (then the change failed). Each probe here answers True (it runs), False
(it does not: no pid file, a stale one, no such process, no threads) or None (vmshare cannot
tell, e.g. a pid folder this user may not read). None counts as running: a failed reload of a
server that may run is a failure, never hidden.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# what smbcontrol says when smbd's pid file is missing or names no live smbd (Samba 4.x)
SMBCONTROL_NO_PID = "Can't find pid for destination"
SMBCONTROL_NO_CONFIG = "Can't load "


@dataclass(frozen=True)
class Liveness:
    running: bool | None
    detail: str  # the evidence, in the user's words: "no pid file /run/ganesha/ganesha.pid"


def _process(pid: int, proc: Path) -> tuple[str, set[str]] | None:
    """(state letter, names: comm and argv[0]'s basename) of a live pid; None if none lives."""
    try:
        state = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        comm = (proc / str(pid) / "comm").read_text().strip()
        argv0 = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return state, {comm, os.path.basename(argv0.decode("utf-8", "replace"))}


def pidfile_process(pidfile: Path, program: str, proc: Path = Path("/proc")) -> Liveness:
    """Whether the pid in ``pidfile`` is a live process of ``program``: a pid file left behind
    by a crash, or whose pid now belongs to another program, is stale (False)."""
    try:
        text = pidfile.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return Liveness(False, f"no pid file {pidfile}")
    except OSError as exc:
        return Liveness(None, f"cannot read {pidfile}: {exc.strerror}")
    words = text.split()
    if not words or not words[0].isdigit() or int(words[0]) <= 0:
        return Liveness(False, f"{pidfile} holds no pid")
    pid = int(words[0])
    if not (proc / "self").exists():  # no procfs (macOS): the kernel says whether pid lives
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return Liveness(False, f"no process {pid} (from {pidfile})")
        except PermissionError:
            pass
        return Liveness(None, f"process {pid} (from {pidfile}) lives; its program is unknown")
    try:
        found = _process(pid, proc)
    except OSError as exc:
        return Liveness(None, f"cannot read process {pid}: {exc.strerror}")
    if found is None or found[0] in ("Z", "X"):
        return Liveness(False, f"no process {pid} (from {pidfile})")
    # comm holds at most 15 bytes of the program's name
    if program not in found[1] and program[:15] not in found[1]:
        return Liveness(False, f"{pidfile} names pid {pid}, which is not {program} (a stale file)")
    return Liveness(True, f"{program} runs as pid {pid}")


def kernel_nfsd(proc: Path = Path("/proc")) -> Liveness:
    """Whether the kernel NFS server runs: its thread count in the nfsd filesystem, or, where
    that is not mounted, kernel threads named nfsd."""
    threads = proc / "fs" / "nfsd" / "threads"
    try:
        count = int(threads.read_text().split()[0])
    except FileNotFoundError:
        pass
    except (OSError, ValueError, IndexError):
        return Liveness(None, f"cannot read {threads}")
    else:
        if count > 0:
            return Liveness(True, f"nfsd runs {count} threads")
        return Liveness(False, f"{threads} is 0: nfsd runs no threads")
    for comm in proc.glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "nfsd":
                return Liveness(True, "nfsd kernel threads run")
        except OSError:
            continue
    return Liveness(False, "no nfsd threads run")


def smbcontrol_found_no_smbd(stderr: str) -> bool:
    """Whether smbcontrol failed because no smbd runs for its smb.conf (it looks smbd's pid up
    in that config's pid directory and checks that the process lives and holds the file). Not
    when it could not load that config: it then looked in its built-in pid directory, where
    another smbd may or may not run."""
    return SMBCONTROL_NO_PID in stderr and SMBCONTROL_NO_CONFIG not in stderr
