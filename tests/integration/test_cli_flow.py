"""The command line's contract on the real guest (issue 7): a plan that removes or replaces
shares asks at a terminal (a pty here) and is refused without one, with the VM unchanged;
remove VM; apply --prune; plan exit codes; --save; progress and choices in order; doctor VM."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.testbed.fixtures import Guest, Vmshare, make_tree

pytestmark = pytest.mark.integration


def at_a_terminal(
    vmshare: Vmshare, *args: str, answer: bytes | None = None, timeout: float = 300
) -> tuple[int, str]:
    """Run vmshare with stdin, stdout and stderr on a pty; type ``answer`` at its question."""
    master, slave = pty.openpty()
    env = {
        **os.environ,
        "VMSHARE_STATE_DIR": str(vmshare.state_dir),
        **vmshare.env,
        "TERM": "xterm",
        "COLUMNS": "120",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmshare", *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    output, answered = b"", answer is None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/n]" in output:
                os.write(master, answer or b"")
                answered = True
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
        raise AssertionError(f"vmshare {args} hung:\n{output.decode(errors='replace')}")
    proc.wait(timeout=30)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode("utf-8", "replace"))
    return proc.returncode, text.replace("\r", "")


def merged(vmshare: Vmshare, *args: str) -> subprocess.CompletedProcess[str]:
    """Run vmshare without a terminal, stdout and stderr in one stream (to check their order)."""
    env = {**os.environ, "VMSHARE_STATE_DIR": str(vmshare.state_dir), **vmshare.env}
    return subprocess.run(
        [sys.executable, "-m", "vmshare", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        timeout=600,
    )


def test_remove_vm_asks_at_a_terminal_and_refuses_without_one(
    guest: Guest, vmshare: Vmshare, tmp_path: Path
):
    spec_file = tmp_path / "vmshare.toml"
    targets = ["/mnt/cli1", "/mnt/cli2"]
    for index, target in enumerate(targets):
        src = make_tree(tmp_path / f"tree{index}")
        vmshare("add", str(src), f"{guest.name}:{target}", "--save", str(spec_file), check=True)
    saved = spec_file.read_text()
    assert 'source = "./tree0"' in saved and 'source = "./tree1"' in saved  # portable

    mounts = {t: guest.mounts()[t] for t in targets}
    shares = vmshare.shares()
    assert vmshare("status", guest.name).returncode == 0
    assert vmshare("status", f"{guest.name}:/mnt/cli1").returncode == 0
    gone = vmshare("status", "it-cli-no-such-vm")
    assert gone.returncode == 1 and "not found" in gone.stderr

    refused = vmshare("remove", guest.name)
    assert refused.returncode == 2, refused.stderr
    assert "refusing without a terminal" in refused.stderr and "--yes" in refused.stderr
    doc = vmshare.json("remove", guest.name)
    assert doc["ok"] is False and doc["data"]["error"]["exit_code"] == 2
    assert {t: guest.mounts().get(t) for t in targets} == mounts and vmshare.shares() == shares

    code, shown = at_a_terminal(vmshare, "remove", guest.name, answer=b"n\n")
    assert code == 1, shown
    assert "Remove 2 share(s)" in shown and "not confirmed; nothing changed" in shown
    assert "unmount /mnt/cli1" in shown  # the steps were shown before the question
    assert {t: guest.mounts().get(t) for t in targets} == mounts and vmshare.shares() == shares

    code, shown = at_a_terminal(
        vmshare, "umount", guest.name, "--save", str(spec_file), answer=b"y\n"
    )
    assert code == 0, shown
    assert "✓ unmount /mnt/cli1" in shown and "Removed:" in shown
    assert not [t for t in targets if t in guest.mounts()] and vmshare.shares() == []
    assert "[[share]]" not in spec_file.read_text()  # --save dropped both from the spec


def test_apply_asks_before_it_prunes_or_replaces_and_plan_exit_codes(
    guest: Guest, vmshare: Vmshare, tmp_path: Path
):
    make_tree(tmp_path / "a")
    make_tree(tmp_path / "b")
    spec_file = tmp_path / "team.toml"
    share = '[[share]]\nsource = "./{0}"\nvm = "' + guest.name + '"\ntarget = "/mnt/cli-{0}"\n'
    spec_file.write_text(share.format("a") + share.format("b"))

    assert vmshare("plan", "-f", str(spec_file), "--exit-code").returncode == 5
    applied = merged(vmshare, "apply", "-f", str(spec_file))  # only adds: runs at once
    assert applied.returncode == 0, applied.stdout
    lines = applied.stdout.splitlines()
    choice = next(i for i, line in enumerate(lines) if line.startswith("share "))
    first_start = next(i for i, line in enumerate(lines) if line.startswith("… "))
    first_done = next(i for i, line in enumerate(lines) if line.startswith("✓ "))
    assert choice < first_start < first_done, applied.stdout  # choices first; starts shown
    assert vmshare("plan", "-f", str(spec_file), "--exit-code").returncode == 0

    spec_file.write_text(share.format("a"))
    planned = vmshare("plan", "-f", str(spec_file))
    assert planned.returncode == 0 and "`apply --prune` would remove" in planned.stdout
    assert vmshare("plan", "-f", str(spec_file), "--prune", "--exit-code").returncode == 5

    mounts = guest.mounts()
    refused = vmshare("apply", "-f", str(spec_file), "--prune")
    assert refused.returncode == 2 and f"vmshare plan -f {spec_file} --prune" in refused.stderr
    assert guest.mounts() == mounts and len(vmshare.shares()) == 2

    pruned = vmshare("apply", "-f", str(spec_file), "--prune", "--yes")
    assert pruned.returncode == 0, pruned.stderr
    assert "/mnt/cli-b" not in guest.mounts() and len(vmshare.shares()) == 1

    spec_file.write_text(share.format("a") + 'mount_options = ["noatime"]\n')
    mounts = guest.mounts()
    refused = vmshare("apply", "-f", str(spec_file))
    assert refused.returncode == 2 and "refusing without a terminal" in refused.stderr
    assert guest.mounts() == mounts

    code, shown = at_a_terminal(vmshare, "apply", "-f", str(spec_file), answer=b"y\n")
    assert code == 0, shown
    assert "would be replaced" in shown and "noatime" in guest.mounts()["/mnt/cli-a"][2]


def test_blocked_dry_run_exits_2_and_the_vm_is_unchanged(
    guest: Guest, vmshare: Vmshare, tmp_path: Path
):
    src = make_tree(tmp_path / "ro")
    mounts = guest.mounts()
    # read-only picks 9p, which cannot be hot-plugged: blocked without --restart
    proc = vmshare(
        "add", str(src), f"{guest.name}:/mnt/cli-ro", "--readonly", "--dry-run", "--json"
    )
    assert proc.returncode == 2, proc.stderr
    assert '"ok": false' in proc.stdout and "--restart" in proc.stdout
    assert guest.mounts() == mounts and vmshare.shares() == []


def test_doctor_checks_one_vm_end_to_end(guest: Guest, vmshare: Vmshare):
    doc = vmshare.json("doctor", guest.name)
    checks = {c["name"]: c for c in doc["data"]}
    assert checks[f"vm {guest.name}"]["status"] == "ok"
    assert checks["guest channel"]["status"] == "ok"
    assert checks["guest virtiofs"]["status"] == "ok"
    assert checks["guest nfs"]["status"] == "ok" and checks["guest smb"]["status"] == "ok"
    assert {"guest -> host nfs", "guest -> host smb"} <= set(checks)
    missing = vmshare("doctor", "it-cli-no-such-vm")
    assert missing.returncode == 1 and "not found" in missing.stdout
