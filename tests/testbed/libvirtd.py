"""Make sure a libvirtd that runs QEMU as root answers on qemu:///system."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

import libvirt

log = logging.getLogger(__name__)

QEMU_CONF = Path("/etc/libvirt/qemu.conf")
BEGIN_MARK = "# BEGIN vmshare-testbed"
END_MARK = "# END vmshare-testbed"
QEMU_CONF_BLOCK = f"""{BEGIN_MARK}
# Test shares live under /tmp/pytest-of-root and /root, which an unprivileged QEMU cannot
# traverse, and 9p passthrough needs root: run QEMU as root on this test machine.
user = "root"
group = "root"
# QEMU and virtiofsd log straight to /var/log/libvirt/qemu/, not through virtlogd, which a
# libvirtd started by hand (no systemd socket activation) does not spawn.
stdio_handler = "file"
{END_MARK}
"""
RUN_DIRS = (
    Path("/var/log/libvirt"),
    Path("/var/run/libvirt"),
    Path("/var/lib/libvirt/qemu"),
    Path("/var/cache/libvirt"),
)
PID_FILE = Path("/var/run/libvirtd.pid")
LOG_FILE = Path("/var/log/libvirt/libvirtd.log")


def ensure_libvirtd(uri: str = "qemu:///system", timeout: float = 30) -> None:
    """Prepare a fresh machine for libvirtd (idempotent), start it if needed, wait for uri."""
    quiet_libvirt()
    _ensure_group("kvm")
    # libvirtd's QEMU driver resolves its compiled-in user at start-up even when qemu.conf
    # says root; a --no-install-recommends install creates neither the user nor its group.
    _ensure_group("libvirt-qemu")
    _ensure_user("libvirt-qemu", "libvirt-qemu", "kvm")
    for directory in RUN_DIRS:
        directory.mkdir(parents=True, exist_ok=True)
    changed = ensure_qemu_conf()
    if changed and _running_pid() is not None:
        log.info("qemu.conf changed: restarting libvirtd")
        _stop_libvirtd(timeout)
    if _answers(uri):
        return
    if _running_pid() is None:
        log.info("starting libvirtd")
        proc = subprocess.run(["libvirtd", "-d"], capture_output=True, text=True)
        if proc.returncode != 0:
            message = f"libvirtd -d failed ({proc.returncode}): {proc.stderr}"
            raise RuntimeError(message + _log_tail())
    deadline = time.monotonic() + timeout
    while not _answers(uri):
        if time.monotonic() > deadline:
            raise RuntimeError(f"libvirtd did not answer on {uri} in {timeout}s{_log_tail()}")
        time.sleep(0.2)


def ensure_qemu_conf(path: Path = QEMU_CONF) -> bool:
    """Put QEMU_CONF_BLOCK into path, replacing an older block; return whether it changed."""
    old = path.read_text() if path.exists() else ""
    kept: list[str] = []
    inside = False
    for line in old.splitlines(keepends=True):
        if line.strip() == BEGIN_MARK:
            inside = True
        elif line.strip() == END_MARK:
            inside = False
        elif not inside:
            kept.append(line)
    body = "".join(kept)
    if body and not body.endswith("\n"):
        body += "\n"
    new = body + QEMU_CONF_BLOCK
    if new == old:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".vmshare-testbed.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
    return True


def quiet_libvirt() -> None:
    """Stop libvirt from printing every (expected) error to stderr; exceptions still carry it."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _answers(uri: str) -> bool:
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    conn.close()
    return True


def _ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True, capture_output=True)


def _ensure_user(name: str, group: str, *extra_groups: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        argv += ["--gid", group, *(["--groups", ",".join(extra_groups)] if extra_groups else [])]
        subprocess.run([*argv, name], check=True, capture_output=True)


def _running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "libvirtd" else None


def _stop_libvirtd(timeout: float) -> None:
    pid = _running_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"libvirtd (pid {pid}) did not stop in {timeout}s{_log_tail()}")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _log_tail(lines: int = 20) -> str:
    try:
        tail = LOG_FILE.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"\n(no {LOG_FILE})"
    return f"\nlast lines of {LOG_FILE}:\n" + "\n".join(tail)
