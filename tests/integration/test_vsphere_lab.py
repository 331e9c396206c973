"""The vSphere end-to-end scenario of test_vsphere_share.py against a real vCenter/ESXi lab.

Runs when VMSHARE_VSPHERE_URL is set (the other variables are in docs/testing.md, "A real
vSphere lab"); without it every test here skips with exactly LAB_SKIP_REASON, the only skip a CI
run allows (tests/ci_rule.py). With the URL set, a missing required variable is an error, not
a skip. The guest is checked through VMware Tools guest operations (vmshare's own channel; no
agent as with the test bed's guest), with the guest login from the environment; the VM's
record through `status` and `list --vm` from a second, empty state dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.ci_rule import LAB_SKIP_REASON
from tests.testbed.fixtures import OWNER, Vmshare, make_tree, tree_digest

from vmshare.guest.channel import GuestChannel

URL = os.environ.get("VMSHARE_VSPHERE_URL", "")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.lab,
    pytest.mark.skipif(not URL, reason=LAB_SKIP_REASON),
]
REQUIRED = (
    "VMSHARE_VSPHERE_USER",
    "VMSHARE_VSPHERE_PASSWORD",
    "VMSHARE_VSPHERE_VM",
    "VMSHARE_VSPHERE_GUEST_USER",
    "VMSHARE_VSPHERE_GUEST_PASSWORD",
)
PROTOCOLS = os.environ.get("VMSHARE_VSPHERE_PROTOCOLS", "nfs smb").split()


@dataclass(frozen=True)
class Lab:
    server: str  # host or host:port, as [vm.NAME] server takes it
    user: str
    vm: str
    guest_user: str
    ca_file: str | None
    insecure: bool
    datacenter: str | None
    host_config: str | None
    host_address: str | None


@pytest.fixture(scope="module")
def lab() -> Lab:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.fail(f"VMSHARE_VSPHERE_URL is set but these are not: {', '.join(missing)}")
    server = URL.removeprefix("https://").removesuffix("/sdk").rstrip("/")
    return Lab(
        server=server,
        user=os.environ["VMSHARE_VSPHERE_USER"],
        vm=os.environ["VMSHARE_VSPHERE_VM"],
        guest_user=os.environ["VMSHARE_VSPHERE_GUEST_USER"],
        ca_file=os.environ.get("VMSHARE_VSPHERE_CA_FILE") or None,
        insecure=os.environ.get("VMSHARE_VSPHERE_INSECURE", "") in ("1", "true", "yes"),
        datacenter=os.environ.get("VMSHARE_VSPHERE_DATACENTER") or None,
        host_config=os.environ.get("VMSHARE_VSPHERE_HOST_CONFIG") or None,
        host_address=os.environ.get("VMSHARE_VSPHERE_HOST_ADDRESS") or None,
    )


def lab_vm_table(lab: Lab) -> str:
    text = (
        f'[vm."{lab.vm}"]\nbackend = "vsphere"\nserver = "{lab.server}"\nuser = "{lab.user}"\n'
        'password_env = "VMSHARE_VSPHERE_PASSWORD"\n'
    )
    if lab.ca_file:
        text += f'ca_file = "{lab.ca_file}"\n'
    if lab.insecure:
        text += "insecure = true\n"
    if lab.datacenter:
        text += f'datacenter = "{lab.datacenter}"\n'
    if lab.host_address:
        text += f'host_address = "{lab.host_address}"\n'
    return text + (
        f'[vm."{lab.vm}".guest]\nlogin_user = "{lab.guest_user}"\n'
        'login_password_env = "VMSHARE_VSPHERE_GUEST_PASSWORD"\n'
    )


def lab_spec(path: Path, lab: Lab, source: Path, target: str, protocol: str) -> Path:
    path.write_text(
        lab_vm_table(lab)
        + f'[[share]]\nsource = "{source}"\nvm = "{lab.vm}"\ntarget = "{target}"\n'
        f'protocol = "{protocol}"\nowner = "{OWNER[0]}:{OWNER[1]}"\n'
    )
    return path


class LabGuest:
    """The lab VM's guest, seen through VMware Tools guest operations."""

    def __init__(self, channel: GuestChannel) -> None:
        self.channel = channel

    def sh(self, script: str, *args: str) -> tuple[int, bytes, bytes]:
        result = self.channel.run(["sh", "-c", script, "sh", *args], timeout=120)
        return result.exit_code, result.stdout, result.stderr

    def read(self, path: str) -> bytes:
        code, out, err = self.sh('cat "$1"', path)
        assert code == 0, err
        return out

    def fstab(self) -> str:
        return self.sh("cat /etc/fstab 2>/dev/null || true")[1].decode()

    def mounted(self, target: str) -> bool:
        return self.sh('grep -q " $1 " /proc/self/mounts', target)[0] == 0


@pytest.fixture(scope="module")
def lab_guest(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabGuest]:
    from vmshare.backends.vsphere.backend import VsphereBackend
    from vmshare.spec import load_spec

    path = tmp_path_factory.mktemp("lab") / "vm.toml"
    path.write_text(lab_vm_table(lab))
    settings = load_spec(path).vm[lab.vm]
    backend = VsphereBackend(settings)  # type: ignore[arg-type]
    try:
        with backend.sdk_errors():
            yield LabGuest(backend.guest_channel(settings))
    finally:
        backend.close()


@pytest.fixture
def vc(lab: Lab, tmp_path: Path) -> Iterator[Vmshare]:
    runner = Vmshare(tmp_path / "state")
    if lab.host_config:
        runner.env["VMSHARE_HOST_CONFIG"] = lab.host_config
    yield runner
    for share in runner.shares():
        runner("remove", share["key"], "--yes")
    everything = "\n".join(runner.transcript)
    for secret in ("VMSHARE_VSPHERE_PASSWORD", "VMSHARE_VSPHERE_GUEST_PASSWORD"):
        assert os.environ[secret] not in everything, f"{secret}'s value in vmshare's output"


def test_lab_doctor(lab: Lab, vc: Vmshare, tmp_path: Path) -> None:
    path = tmp_path / "vm.toml"
    path.write_text(lab_vm_table(lab))
    rows = {c["name"]: c for c in vc.json("doctor", "-f", str(path), lab.vm)["data"]}
    for name in ("vsphere login", "vsphere server", f"vsphere vm {lab.vm}", "vmware tools"):
        assert rows[name]["status"] == "ok", rows[name]
    assert rows["vsphere tls"]["status"] == ("warn" if lab.insecure else "ok")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_lab_share_round_trips_and_remove_leaves_nothing(
    lab: Lab, lab_guest: LabGuest, vc: Vmshare, open_tmp: Path, tmp_path: Path, protocol: str
) -> None:
    src = make_tree(open_tmp / f"lab-{protocol}", OWNER)
    target = f"/mnt/vmshare-lab-{protocol}"
    key = f"{lab.vm}:{target}"
    spec = lab_spec(tmp_path / "vmshare.toml", lab, src, target, protocol)
    before, fstab_before = tree_digest(src), lab_guest.fstab()

    dry = vc.json("apply", "-f", str(spec), "--dry-run")
    steps = dry["data"]["plan"]["steps"]
    assert any(target in s["summary"] for s in steps), steps

    vc("apply", "-f", str(spec), "--yes", check=True)
    assert lab_guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    code, _, err = lab_guest.sh('printf "from the guest" > "$1/guest.txt"', target)
    assert code == 0, err
    assert (src / "guest.txt").read_text() == "from the guest"
    (src / "guest.txt").unlink()
    assert vc.json("apply", "-f", str(spec), "--dry-run")["data"]["plan"]["steps"] == []
    assert [s["key"] for s in vc.shares()] == [key]
    assert vc("status", key).returncode == 0  # export, mount, fstab entry, write/read probe
    (row,) = [h for h in vc.json("status", lab.vm)["data"] if h["key"] == key]
    assert row["checks"]["record"] == "ok", row  # vmshare's record in the VM's extraConfig
    other = Vmshare(tmp_path / "other-workstation", dict(vc.env))
    listed = other.json("list", "--vm", lab.vm, "-f", str(spec))["data"]
    assert [(r["made"], r["record"]) for r in listed if r["key"] == key] == [
        ("elsewhere", "recorded")
    ]

    vc("remove", key, "--yes", check=True)
    assert not lab_guest.mounted(target)
    assert lab_guest.fstab() == fstab_before
    assert tree_digest(src) == before
    assert vc.shares() == []
    listed = other.json("list", "--vm", lab.vm, "-f", str(spec))["data"]
    assert key not in [r["key"] for r in listed]  # the record is gone from the VM
    for secret in ("VMSHARE_VSPHERE_PASSWORD", "VMSHARE_VSPHERE_GUEST_PASSWORD"):
        assert os.environ[secret] not in "\n".join(other.transcript)
