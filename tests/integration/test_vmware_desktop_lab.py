"""The Workstation/Fusion scenario against a real product: VMSHARE_VMRUN names the real vmrun and
VMSHARE_VMX the .vmx of a running Linux VM with open-vm-tools; VMSHARE_VMWARE_GUEST_USER and
VMSHARE_VMWARE_GUEST_PASSWORD its guest login (VMSHARE_VMWARE_PRODUCT: ws or fusion, default by
OS). Without VMSHARE_VMRUN every test here skips with exactly lab_reason("VMSHARE_VMRUN"), the
only skip a CI run allows (tests/ci_rule.py); with it, a missing variable is an error.

The guest is checked through vmshare's own vmrun channel; the folder through the .vmx VMware
writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.ci_rule import lab_reason
from tests.testbed.fixtures import Vmshare, make_tree, tree_digest

from vmshare.backends.vmware_desktop.backend import VmwareDesktopBackend
from vmshare.formats import vmx as vmxfmt
from vmshare.protocols import mount_tag
from vmshare.spec import HostSettings

VMRUN = os.environ.get("VMSHARE_VMRUN", "")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.lab,
    pytest.mark.skipif(not VMRUN, reason=lab_reason("VMSHARE_VMRUN")),
]
REQUIRED = ("VMSHARE_VMX", "VMSHARE_VMWARE_GUEST_USER", "VMSHARE_VMWARE_GUEST_PASSWORD")
VM = "labvm"


@pytest.fixture(scope="module")
def host_config(tmp_path_factory) -> Path:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.fail(f"VMSHARE_VMRUN is set but these are not: {', '.join(missing)}")
    product = os.environ.get("VMSHARE_VMWARE_PRODUCT", "auto")
    config = tmp_path_factory.mktemp("vmware-lab") / "host.toml"
    config.write_text(
        f'[vm.{VM}]\nbackend = "vmware-desktop"\nvmx = "{os.environ["VMSHARE_VMX"]}"\n'
        f'vmrun = "{VMRUN}"\nproduct = "{product}"\n'
        f'[vm.{VM}.guest]\nlogin_user = "{os.environ["VMSHARE_VMWARE_GUEST_USER"]}"\n'
        'login_password_env = "VMSHARE_VMWARE_GUEST_PASSWORD"\n'
    )
    return config


def test_hgfs_share_round_trip_on_a_real_product(host_config, tmp_path, monkeypatch):
    import tomllib

    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(host_config))
    cli = Vmshare(tmp_path / "state", env={"VMSHARE_HOST_CONFIG": str(host_config)})
    settings = HostSettings.model_validate(tomllib.loads(host_config.read_text())).vm[VM]
    backend = VmwareDesktopBackend(settings)  # type: ignore[arg-type]
    channel = backend.guest_channel(settings)
    src = make_tree(tmp_path / "src")
    target, tag = "/mnt/vmshare-lab", mount_tag(f"{VM}:/mnt/vmshare-lab")
    plan = cli("add", str(src), f"{VM}:{target}", "--dry-run", env={"COLUMNS": "250"})
    assert "addSharedFolder" in plan.stdout and "fuse.vmhgfs-fuse" in plan.stdout
    cli("add", str(src), f"{VM}:{target}", check=True)
    try:
        parsed = vmxfmt.parse(Path(settings.vmx).read_bytes())  # type: ignore[union-attr]
        names = [f.guest_name for f in vmxfmt.shared_folders(parsed).values()]
        assert tag in names
        result = channel.run(["cat", f"{target}/hello.txt"])
        assert result.stdout == b"hello from the host\n", result.stderr
        assert channel.run(["sh", "-c", f'echo guest > "{target}/guest.txt"']).exit_code == 0
        assert (src / "guest.txt").read_text() == "guest\n"
        fstab = channel.run(["cat", "/etc/fstab"]).stdout.decode()
        assert f".host:/{tag} {target} fuse.vmhgfs-fuse" in fstab and "nofail" in fstab
        assert cli.json("status")["data"][0]["checks"]["probe"] == "ok"
    finally:
        digest = tree_digest(src)
        cli("remove", f"{VM}:{target}", check=True)
    parsed = vmxfmt.parse(Path(settings.vmx).read_bytes())  # type: ignore[union-attr]
    assert tag not in [f.guest_name for f in vmxfmt.shared_folders(parsed).values()]
    assert tree_digest(src) == digest
    for text in cli.transcript:
        assert os.environ["VMSHARE_VMWARE_GUEST_PASSWORD"] not in text
