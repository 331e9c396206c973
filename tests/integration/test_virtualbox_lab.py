"""vboxsf end to end against a real VirtualBox (VMSHARE_VBOX=1), through the real CLI.

Without VMSHARE_VBOX every test here skips with exactly ``lab_reason("VMSHARE_VBOX")``, the
only skip a CI run allows (tests/ci_rule.py). With it set, these must be set too (a missing one
is an error, not a skip): VMSHARE_VBOX_VM (a running VM with Guest Additions, by name or UUID),
VMSHARE_VBOX_GUEST_USER and VMSHARE_VBOX_GUEST_PASSWORD (a guest account that may mount:
root, or one with sudo-less mount). VMSHARE_VBOX_ADAPTER picks the adapter (auto, sdk,
vboxmanage; default auto). The guest is checked through vmshare's own guest control channel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.ci_rule import lab_reason
from tests.testbed.fixtures import Vmshare, make_tree, tree_digest

from vmshare.protocols import mount_tag

ENABLED = os.environ.get("VMSHARE_VBOX", "") not in ("", "0")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.lab,
    pytest.mark.skipif(not ENABLED, reason=lab_reason("VMSHARE_VBOX")),
]
REQUIRED = ("VMSHARE_VBOX_VM", "VMSHARE_VBOX_GUEST_USER", "VMSHARE_VBOX_GUEST_PASSWORD")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Vmshare, str]]:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.fail(f"VMSHARE_VBOX is set but these are not: {', '.join(missing)}")
    vm = os.environ["VMSHARE_VBOX_VM"]
    config = tmp_path / "host.toml"
    config.write_text(
        f'[vm."{vm}"]\nbackend = "virtualbox"\n'
        f'adapter = "{os.environ.get("VMSHARE_VBOX_ADAPTER", "auto")}"\n'
        f'[vm."{vm}".guest]\nlogin_user = "{os.environ["VMSHARE_VBOX_GUEST_USER"]}"\n'
        'login_password_env = "VMSHARE_VBOX_GUEST_PASSWORD"\n'
    )
    runner = Vmshare(tmp_path / "state", env={"VMSHARE_HOST_CONFIG": str(config)})
    yield runner, vm
    for share in runner.shares():
        runner("remove", share["key"], "--yes", "--restart")


def test_a_vboxsf_share_round_trips_and_leaves_nothing(lab, tmp_path: Path):
    cli, vm = lab
    src = make_tree(tmp_path / "src")
    target = "/mnt/vmshare-lab"
    doctor = cli("doctor", vm)
    assert "virtualbox adapter" in doctor.stdout, doctor.stderr
    # VBoxManage adds and removes a permanent folder only while the VM is off (its write lock):
    # with that adapter the VM is stopped around the change, which --restart allows
    restart = ["--restart"]
    planned = cli("add", str(src), f"{vm}:{target}", "--dry-run", *restart, check=True).stdout
    assert "sharedfolder add" in planned or "create_shared_folder" in planned
    result = cli.json("add", str(src), f"{vm}:{target}", *restart)
    assert result["ok"], result
    assert result["data"]["plan"]["choices"][0]["protocol"] == "vboxsf"
    status = cli.json("status")
    assert status["data"][0]["checks"]["probe"] == "ok", status
    digest = tree_digest(src)
    cli("remove", f"{vm}:{target}", *restart, check=True)
    assert tree_digest(src) == digest
    assert cli.shares() == []
    tag = mount_tag(f"{vm}:{target}")
    assert tag not in cli("doctor", vm).stdout
    password = os.environ["VMSHARE_VBOX_GUEST_PASSWORD"]
    assert all(password not in text for text in cli.transcript)  # never in any output
