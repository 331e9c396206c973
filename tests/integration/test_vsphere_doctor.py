"""`vmshare doctor VM` for a vSphere VM, through the real CLI against the simulator (no guest):
TLS, login, the server's product and API version, the VM, VMware Tools; never a password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.testbed.fixtures import Vmshare
from tests.testbed.vcsim import Vcsim

from vmshare.backends.vsphere.backend import VsphereBackend
from vmshare.backends.vsphere.settings import VsphereVm

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[Vcsim]:
    with Vcsim(vms=3) as sim:
        yield sim


@pytest.fixture
def run(sim: Vcsim, tmp_path: Path) -> Vmshare:
    runner = Vmshare(tmp_path / "state")
    runner.env["VMSHARE_IT_DOCTOR_PASSWORD"] = sim.password
    return runner


def spec(path: Path, sim: Vcsim, vm: str | None = None, *, tls: str | None = None) -> Path:
    tls = f'ca_file = "{sim.ca_file}"' if tls is None else tls
    path.write_text(
        f'[vm."{vm or sim.vm}"]\nbackend = "vsphere"\nserver = "{sim.host}:{sim.port}"\n'
        f'user = "{sim.username}"\npassword_env = "VMSHARE_IT_DOCTOR_PASSWORD"\n{tls}\n'
    )
    return path


def doctor(run: Vmshare, path: Path, vm: str) -> tuple[dict[str, dict], str]:
    """The vsphere rows of --json, and the text output."""
    proc = run("doctor", "-f", str(path), vm, "--json")
    rows = {c["name"]: c for c in json.loads(proc.stdout)["data"]}
    text = run("doctor", "-f", str(path), vm)
    return rows, text.stdout + text.stderr


def assert_no_secret(run: Vmshare, *secrets: str) -> None:
    everything = "\n".join(run.transcript)
    for secret in secrets:
        assert secret not in everything


def test_a_good_server_and_vm(run: Vmshare, sim: Vcsim, tmp_path: Path) -> None:
    rows, text = doctor(run, spec(tmp_path / "s.toml", sim), sim.vm)
    assert rows["vsphere tls"]["status"] == "ok"
    assert rows["vsphere tls"]["detail"] == (
        f"https://{sim.host}:{sim.port}: certificate trusted by the CA file {sim.ca_file}"
    )
    assert rows["vsphere login"] == {
        "name": "vsphere login",
        "status": "ok",
        "detail": f"{sim.username} logged in at https://{sim.host}:{sim.port}",
        "hint": None,
    }
    server = rows["vsphere server"]["detail"]
    assert server.startswith("VMware vCenter Server") and "(API " in server, server
    assert "VirtualCenter" in server
    vm = rows[f"vsphere vm {sim.vm}"]
    assert vm["status"] == "ok" and vm["detail"].startswith(f"DC0/vm/{sim.vm} (vm-")
    assert "poweredOn" in vm["detail"]
    assert rows["vmware tools"]["status"] == "ok"
    assert rows["vmware tools"]["detail"].startswith("guestToolsRunning (version ")
    for name in ("vsphere tls", "vsphere login", "vsphere server", "vmware tools"):
        assert name in text
    assert_no_secret(run, sim.password)


def test_untrusted_certificate(run: Vmshare, sim: Vcsim, tmp_path: Path) -> None:
    rows, text = doctor(run, spec(tmp_path / "s.toml", sim, tls=""), sim.vm)
    tls = rows["vsphere tls"]
    assert tls["status"] == "fail" and "is not trusted" in tls["detail"]
    assert "ca_file" in tls["hint"] and "insecure = true" in tls["hint"]
    assert "vsphere login" not in rows  # nothing was sent to an untrusted server
    assert "not trusted" in text
    assert_no_secret(run, sim.password)


def test_insecure_is_a_warning(run: Vmshare, sim: Vcsim, tmp_path: Path) -> None:
    rows, _ = doctor(run, spec(tmp_path / "s.toml", sim, tls="insecure = true"), sim.vm)
    assert rows["vsphere tls"]["status"] == "warn"
    assert "certificate checks are off" in rows["vsphere tls"]["detail"]
    assert rows["vsphere login"]["status"] == "ok"
    assert_no_secret(run, sim.password)


def test_refused_login(run: Vmshare, sim: Vcsim, tmp_path: Path) -> None:
    wrong = sim.password + "-wrong"
    run.env["VMSHARE_IT_DOCTOR_PASSWORD"] = wrong
    rows, text = doctor(run, spec(tmp_path / "s.toml", sim), sim.vm)
    login = rows["vsphere login"]
    assert login["status"] == "fail"
    assert login["detail"].startswith("vSphere refused the login")
    assert "password" in login["hint"]
    assert "vsphere server" not in rows
    assert "refused the login" in text
    assert_no_secret(run, sim.password, wrong)


def test_unknown_vm(run: Vmshare, sim: Vcsim, tmp_path: Path) -> None:
    name = sim.vm + "x"
    rows, _ = doctor(run, spec(tmp_path / "s.toml", sim, vm=name), name)
    vm = rows[f"vsphere vm {name}"]
    assert vm["status"] == "fail" and "not found" in vm["detail"]
    assert vm["hint"] == f"did you mean {sim.vm!r}?"
    assert rows["vsphere login"]["status"] == "ok"
    assert_no_secret(run, sim.password)


@pytest.mark.parametrize("insecure", [True, False])
def test_the_plan_says_when_certificate_checks_are_off(
    sim: Vcsim, monkeypatch: pytest.MonkeyPatch, insecure: bool
) -> None:
    monkeypatch.setenv("VMSHARE_IT_DOCTOR_PASSWORD", sim.password)
    tls: dict[str, object] = {"insecure": True} if insecure else {"ca_file": str(sim.ca_file)}
    settings = VsphereVm(
        name=sim.vm,
        server=f"{sim.host}:{sim.port}",
        user=sim.username,
        password_env="VMSHARE_IT_DOCTOR_PASSWORD",
        **tls,
    )
    backend = VsphereBackend(settings)
    try:
        facts = backend.inspect(sim.vm)
    finally:
        backend.close()
    assert facts.exists
    if insecure:
        assert facts.warnings == [
            f"certificate checks are off for https://{sim.host}:{sim.port} (insecure = true): "
            "vmshare cannot tell the real server from an impostor; give its CA with ca_file "
            "instead"
        ]
    else:
        assert facts.warnings == []
