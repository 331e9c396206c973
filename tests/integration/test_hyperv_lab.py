"""A share on a real Hyper-V host, through the real CLI: doctor, add (--create), files written
by the guest land in the host's folder, remove leaves nothing (share, rights, account, folder).

Runs when VMSHARE_HYPERV_URL is set: ``local`` (vmshare on the Windows host itself) or
``winrm[s]://HOST[:PORT]``; the other variables are in docs/testing.md ("A real Hyper-V host").
Without it every test here skips with exactly ``lab_reason("VMSHARE_HYPERV_URL")``, the only skip
a CI run allows (tests/ci_rule.py). With it set, a missing required variable is an error.
The guest is a Linux VM reached over ssh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.ci_rule import lab_reason

from vmshare.backends.hyperv.runner import runner_for
from vmshare.formats.powershell import Var, assign, command, json_result, script
from vmshare.spec import parse_spec

URL = os.environ.get("VMSHARE_HYPERV_URL", "")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.lab,
    pytest.mark.skipif(not URL, reason=lab_reason("VMSHARE_HYPERV_URL")),
]
REQUIRED = ("VMSHARE_HYPERV_VM", "VMSHARE_HYPERV_FOLDER", "VMSHARE_HYPERV_SSH_HOST")


@dataclass(frozen=True)
class Lab:
    vm: str
    folder: str  # a Windows folder vmshare may create and remove, e.g. C:\vmshare-lab\src
    table: str  # the [vm.NAME] table of the spec


@pytest.fixture(scope="module")
def lab() -> Lab:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if URL != "local" and not os.environ.get("VMSHARE_HYPERV_USER"):
        missing.append("VMSHARE_HYPERV_USER")
    if missing:
        pytest.fail(f"VMSHARE_HYPERV_URL is set but these are not: {', '.join(missing)}")
    vm = os.environ["VMSHARE_HYPERV_VM"]
    table = f'[vm."{vm}"]\nbackend = "hyperv"\nwinrm = {json.dumps(URL)}\n'
    if URL != "local":
        table += f"user = {json.dumps(os.environ['VMSHARE_HYPERV_USER'])}\n"
        table += 'password_env = "VMSHARE_HYPERV_PASSWORD"\n'
    if os.environ.get("VMSHARE_HYPERV_CA_FILE"):
        table += f"ca_file = {json.dumps(os.environ['VMSHARE_HYPERV_CA_FILE'])}\n"
    table += f'[vm."{vm}".guest]\nchannel = "ssh"\n'
    table += f"ssh_host = {json.dumps(os.environ['VMSHARE_HYPERV_SSH_HOST'])}\n"
    for key in ("ssh_user", "ssh_key", "ssh_known_hosts"):
        value = os.environ.get(f"VMSHARE_HYPERV_{key.upper()}")
        if value:
            table += f"{key} = {json.dumps(value)}\n"
    return Lab(vm, os.environ["VMSHARE_HYPERV_FOLDER"], table)


def vmshare(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VMSHARE_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "vmshare.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def on_host(lab: Lab, spec_text: str, path: str) -> bool:
    """Whether ``path`` exists on the Hyper-V host (asked through vmshare's own runner)."""
    settings = parse_spec(spec_text).vm[lab.vm]
    text = script(
        assign("path", path),
        "$found = " + command("Test-Path", LiteralPath=Var("path")),
        command("ConvertTo-Json", InputObject=Var("found"), Compress=True),
    )
    return bool(json_result(runner_for(settings).run(text), "look at the lab's folder"))


def test_doctor_checks_the_host_and_the_vm(lab: Lab, tmp_path):
    spec = tmp_path / "vmshare.toml"
    spec.write_text(lab.table)
    proc = vmshare(tmp_path / "state", "doctor", lab.vm, "-f", str(spec), "--json")
    rows = {row["name"]: row for row in json.loads(proc.stdout)["data"]}
    assert rows["hyperv host"]["status"] == "ok", rows
    assert rows[f"hyperv vm {lab.vm}"]["status"] == "ok", rows


def test_a_share_round_trips_and_remove_leaves_nothing(lab: Lab, tmp_path):
    target = "/mnt/vmshare-hyperv-lab"
    text = (
        lab.table
        + f"[[share]]\nsource = {json.dumps(lab.folder)}\nvm = {json.dumps(lab.vm)}\n"
        + f'target = "{target}"\ncreate = true\n'
    )
    spec = tmp_path / "vmshare.toml"
    spec.write_text(text)
    state = tmp_path / "state"
    assert not on_host(lab, text, lab.folder), "the lab folder must not exist before the test"
    proc = vmshare(state, "apply", "-f", str(spec), "--yes")
    assert proc.returncode == 0, proc.stderr
    assert on_host(lab, text, lab.folder)
    ssh = ["ssh", "-o", "BatchMode=yes", os.environ["VMSHARE_HYPERV_SSH_HOST"]]
    assert subprocess.run([*ssh, f"echo lab > {target}/from-guest.txt"]).returncode == 0
    assert on_host(lab, text, lab.folder + "\\from-guest.txt")
    assert subprocess.run([*ssh, f"rm {target}/from-guest.txt"]).returncode == 0
    proc = vmshare(state, "plan", "-f", str(spec), "--json")
    assert json.loads(proc.stdout)["data"]["plan"]["steps"] == []
    proc = vmshare(state, "remove", f"{lab.vm}:{target}", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert not on_host(lab, text, lab.folder)  # vmshare made it, and it was empty
