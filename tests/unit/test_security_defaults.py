"""vmshare's security defaults, each one a test (docs/design.md, "Security defaults")."""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from pathlib import Path

import pytest
from factories import fresh_vm, spec_of

from vmshare.backends.vsphere.backend import endpoint_of
from vmshare.errors import StateError
from vmshare.facts import Facts, GuestFacts, PathFact
from vmshare.plan.network import HostServers
from vmshare.plan.resolve import resolve
from vmshare.protocols import nfs, smb
from vmshare.secrets import SecretStore
from vmshare.spec import HostSettings, NfsHost, SmbHost, parse_spec
from vmshare.state import State, StateStore

VM_ADDRESS = "192.168.122.50"


def _plan(tmp_path: Path, protocol: str, exporter: str = "kernel"):
    settings = HostSettings(
        nfs=NfsHost(exporter=exporter, exports_file=str(tmp_path / "exports")),
        smb=SmbHost(include_file=str(tmp_path / "vmshare.conf")),
    )
    spec = spec_of(f'/srv/x testvm:/mnt/x protocol="{protocol}"')
    guest = GuestFacts(reachable=True, gateway="192.168.122.1", existing_dirs=[])
    vm = fresh_vm(addresses=[VM_ADDRESS], guest=guest)
    facts = Facts(
        host_paths={"/srv/x": PathFact(exists=True, is_dir=True, uid=1000, gid=100)},
        vms={vm.name: vm},
        user_names={1000: "dev"},
        group_names={100: "users"},
    )
    servers = HostServers.from_settings(settings)
    return resolve(spec, facts, State(), origin="cli", servers=servers), servers


@pytest.mark.parametrize("exporter", ["kernel", "ganesha", "macos"])
def test_an_nfs_export_names_the_vm_s_one_address_by_default(tmp_path, exporter):
    plan, servers = _plan(tmp_path, "nfs", exporter)
    (step,) = [s for s in plan.steps if s.action == "nfs_export"]
    client = step.args["export"]["client"]
    assert ipaddress.ip_address(client) == ipaddress.ip_address(VM_ADDRESS)  # not a network
    entry = servers.nfs.render(nfs.NfsExport(**step.args["export"]))
    assert VM_ADDRESS in entry
    for wide in ("*", "0.0.0.0", "/24", "/16", "-network"):
        assert wide not in entry.split(None, 1)[1]  # the path may hold anything; the rest not


def test_an_smb_share_admits_the_vm_s_one_address_and_denies_the_rest(tmp_path):
    plan, _ = _plan(tmp_path, "smb")
    (step,) = [s for s in plan.steps if s.action == "smb_share"]
    assert step.args["share"]["client"] == VM_ADDRESS
    section = smb.render_section(smb.SmbShare(**step.args["share"])).splitlines()
    assert f"\thosts allow = {VM_ADDRESS}" in section
    assert "\thosts deny = ALL" in section
    assert "\tguest ok = no" in section


def test_smb_encryption_is_required_by_default_on_both_ends(tmp_path):
    plan, _ = _plan(tmp_path, "smb")
    (share,) = [s.args["share"] for s in plan.steps if s.action == "smb_share"]
    assert share["encrypt"] is True
    assert "\tsmb encrypt = required" in smb.render_section(smb.SmbShare(**share)).splitlines()
    (mount,) = [s for s in plan.steps if s.action == "mount"]
    assert "seal" in mount.args["options"]  # the guest asks for it too


def test_vsphere_checks_certificates_unless_the_vm_says_insecure():
    base = '[vm.x]\nbackend = "vsphere"\nserver = "vc.example"\nuser = "u"\npassword_env = "P"\n'
    context = endpoint_of(parse_spec(base).vm_for("x")).tls()  # type: ignore[arg-type]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    off = endpoint_of(parse_spec(base + "insecure = true\n").vm_for("x")).tls()  # type: ignore[arg-type]
    assert off.verify_mode == ssl.CERT_NONE


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_dir_is_private_and_a_looser_one_is_tightened(tmp_path):
    store = StateStore(tmp_path / "state")
    store.save(State())
    assert _mode(store.directory) == 0o700
    assert _mode(store.path) == 0o600
    os.chmod(store.directory, 0o755)  # an older vmshare's folder, or a umask
    os.chmod(store.path, 0o644)
    with store.locked():
        assert _mode(store.directory) == 0o700
        store.save(State())
    assert _mode(store.path) == 0o600


def test_secrets_are_0600_in_a_0700_folder_and_a_loose_one_is_tightened(tmp_path):
    secrets = SecretStore(tmp_path / "state")
    secrets.get_or_create("smb-vmshare")
    path = secrets.directory / "smb-vmshare"
    assert (_mode(secrets.directory.parent), _mode(secrets.directory), _mode(path)) == (
        0o700,
        0o700,
        0o600,
    )
    os.chmod(secrets.directory, 0o755)
    os.chmod(path, 0o644)
    secrets.get_or_create("smb-vmshare")
    assert (_mode(secrets.directory), _mode(path)) == (0o700, 0o600)


def test_a_state_dir_of_another_user_or_a_symlink_is_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)  # tests run as root: give it to nobody
    with pytest.raises(StateError, match="belongs to uid 65534") as caught:
        StateStore(foreign).save(State())
    assert "VMSHARE_STATE_DIR" in (caught.value.hint or "")
    assert not (foreign / "state.json").exists()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(StateError, match="not a folder of its own"):
        StateStore(link).save(State())


def test_doctor_fails_on_a_state_dir_vmshare_would_refuse(tmp_path):
    from vmshare.doctor import diagnose

    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    (row,) = [c for c in diagnose(StateStore(foreign)) if c.name == "state dir"]
    assert row.status == "fail" and "belongs to uid 65534" in row.detail
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)
    (row,) = [c for c in diagnose(StateStore(loose)) if c.name == "state dir"]
    assert row.status == "ok" and "tightens it to 700" in row.detail
