"""Per-backend VM settings: one model per backend, a union discriminated by ``backend``."""

import json
from pathlib import Path

import pytest

from vmshare.backends.hyperv.settings import HypervVm
from vmshare.backends.libvirt.settings import LibvirtVm
from vmshare.backends.settings import GuestAccess
from vmshare.backends.virtualbox.settings import VirtualboxVm
from vmshare.backends.vmware_desktop.settings import VmwareDesktopVm
from vmshare.backends.vsphere.settings import VsphereVm
from vmshare.errors import SpecError
from vmshare.spec import Spec, json_schema, load_spec, parse_spec, shorthand, vm_settings
from vmshare.state import StateStore

# one valid [vm.x] table per backend
TABLES = {
    "libvirt": 'backend = "libvirt"\nconnection = "qemu:///session"\n',
    "vsphere": (
        'backend = "vsphere"\nserver = "vc.example.test"\nuser = "svc@vsphere.local"\n'
        'password_env = "FAKE_VSPHERE_PASSWORD"\ndatacenter = "dc1"\n'
    ),
    "vmware-desktop": 'backend = "vmware-desktop"\nvmx = "/vms/dev/dev.vmx"\nproduct = "ws"\n',
    "virtualbox": 'backend = "virtualbox"\nmachine = "dev box"\nadapter = "vboxmanage"\n',
    "hyperv": (
        'backend = "hyperv"\nwinrm = "winrms://hv.example.test:5986"\ntransport = "kerberos"\n'
        'user = "EXAMPLE\\\\svc"\npassword = { keyring = "vmshare-hyperv/svc" }\n'
    ),
}
MODELS = {
    "libvirt": LibvirtVm,
    "vsphere": VsphereVm,
    "vmware-desktop": VmwareDesktopVm,
    "virtualbox": VirtualboxVm,
    "hyperv": HypervVm,
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vmshare.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("backend", list(TABLES))
def test_each_backend_table_gives_its_own_model(backend):
    spec = parse_spec(f"[vm.x]\n{TABLES[backend]}")
    vm = spec.vm_for("x")
    assert type(vm) is MODELS[backend] and vm.backend == backend and vm.name == "x"


def test_a_table_without_backend_is_libvirt_and_so_is_an_undescribed_vm():
    spec = parse_spec('[vm.x]\nconnection = "qemu:///session"\n')
    assert isinstance(spec.vm_for("x"), LibvirtVm)
    assert spec.vm_for("other") == LibvirtVm(name="other")
    assert spec.vm_for("other").connection == "qemu:///system"
    assert vm_settings("y") == LibvirtVm(name="y")
    assert vm_settings("z", "virtualbox", machine="m") == VirtualboxVm(name="z", machine="m")


def test_vmware_is_desktop_with_a_vmx_and_vsphere_without():
    desktop = parse_spec('[vm.x]\nbackend = "vmware"\nvmx = "/v/x.vmx"\n').vm_for("x")
    assert isinstance(desktop, VmwareDesktopVm) and desktop.backend == "vmware-desktop"
    text = '[vm.x]\nbackend = "vmware"\nserver = "vc"\nuser = "u"\npassword_env = "FAKE_PW"\n'
    server = parse_spec(text).vm_for("x")
    assert isinstance(server, VsphereVm) and server.backend == "vsphere"


# a mistyped key in each backend's table: (typo, the key it means)
TYPOS = {
    "libvirt": ("conection", "connection"),
    "vsphere": ("datacentre", "datacenter"),
    "vmware-desktop": ("prodcut", "product"),
    "virtualbox": ("adaptr", "adapter"),
    "hyperv": ("transprt", "transport"),
}


@pytest.mark.parametrize("backend", list(TABLES))
def test_an_unknown_key_in_each_backend_names_the_closest_and_the_line(tmp_path, backend):
    typo, meant = TYPOS[backend]
    text = (
        f'version = 1\n\n[vm.other]\nbackend = "libvirt"\n\n[vm.x]\n{TABLES[backend]}{typo} = "x"\n'
    )
    line = text.splitlines().index(f'{typo} = "x"') + 1
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.message.startswith(
        f"{path}:{line}: vm.x.{typo}: unknown key {typo!r}; did you mean {meant!r}?"
    ), info.value.message
    assert backend not in info.value.message.split(": ")[1]  # the union's tag is not a key


def test_an_unknown_backend_names_the_closest_at_its_line(tmp_path):
    path = write(tmp_path, '[vm.x]\nguest = { channel = "ssh" }\nbackend = "vsphre"\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.message == (
        f"{path}:3: vm.x.backend: unknown backend 'vsphre'; did you mean 'vsphere'?"
    )


def test_a_key_in_a_vm_sub_table_is_found_there(tmp_path):
    text = '[vm.x]\nbackend = "libvirt"\n\n[vm.x.guest]\nchannel = "ssh"\nssh_prot = 22\n'
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert ":6: vm.x.guest.ssh_prot: unknown key 'ssh_prot'; did you mean 'ssh_port'?" in (
        info.value.message
    )


@pytest.mark.parametrize("backend", ["vsphere", "hyperv"])
def test_certificates_are_checked_unless_insecure_and_not_both(backend):
    base = TABLES[backend]
    assert parse_spec(f"[vm.x]\n{base}").vm_for("x").verify is True
    insecure = parse_spec(f"[vm.x]\n{base}insecure = true\n").vm_for("x")
    assert insecure.verify is False
    with pytest.raises(SpecError, match=r"set ca_file .* or insecure, not both"):
        parse_spec(f'[vm.x]\n{base}insecure = true\nca_file = "/etc/ssl/ca.pem"\n')
    with pytest.raises(SpecError, match="set insecure = true"):
        parse_spec(f"[vm.x]\n{base}verify = false\n")


@pytest.mark.parametrize("backend", ["vsphere", "hyperv"])
def test_a_literal_password_is_refused_without_echoing_it(tmp_path, backend):
    table = "\n".join(
        line for line in TABLES[backend].splitlines() if not line.startswith("password")
    )
    path = write(tmp_path, f'[vm.x]\n{table}\npassword = "fake-literal-pw-1"\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    error = info.value
    assert f"{path}:{len(table.splitlines()) + 2}: vm.x.password:" in error.message
    assert "password_env" in error.message and "keyring" in error.message
    assert "fake-literal-pw-1" not in f"{error.message} {error.hint} {error!r}"


def test_password_env_is_short_for_an_env_reference():
    vm = parse_spec(f"[vm.x]\n{TABLES['vsphere']}").vm_for("x")
    assert isinstance(vm, VsphereVm) and vm.password.env == "FAKE_VSPHERE_PASSWORD"
    with pytest.raises(SpecError, match="password_env or password, not both"):
        parse_spec(f'[vm.x]\n{TABLES["vsphere"]}password = {{ env = "OTHER" }}\n')


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ('winrm = "http://hv"', "winrm must be"),
        ('winrm = "winrm://u:p@hv"', "may not hold a user or password"),
    ],
)
def test_hyperv_winrm_is_local_or_a_winrm_url(extra, fragment):
    with pytest.raises(SpecError, match=fragment):
        parse_spec(f'[vm.x]\nbackend = "hyperv"\n{extra}\n')
    assert parse_spec('[vm.x]\nbackend = "hyperv"\n').vm_for("x").where == "Hyper-V on this host"


def test_vmx_must_name_a_vmx_file():
    with pytest.raises(SpecError, match=r"vm\.x\.vmx: vmx must be the path"):
        parse_spec('[vm.x]\nbackend = "vmware-desktop"\nvmx = "/vms/dev"\n')


def test_connection_keys_group_vms_that_share_a_connection():
    a, b = LibvirtVm(name="a"), LibvirtVm(name="b")
    assert a.connection_key() == b.connection_key() == "qemu:///system"
    assert LibvirtVm(name="c", connection="qemu:///session").connection_key() != (
        a.connection_key()
    )
    vc = parse_spec(f"[vm.x]\n{TABLES['vsphere']}").vm_for("x")
    other_user = vc.model_copy(update={"user": "other"})
    assert vc.connection_key() != other_user.connection_key()
    assert vc.where == "vSphere vc.example.test"


def test_session_builds_one_backend_per_connection(monkeypatch, tmp_path):
    from vmshare import core

    built = []

    class Stub:
        def __init__(self, settings):
            built.append(settings.name)
            self.restart_follows = set()

    monkeypatch.setattr(core, "load_backend", Stub)
    vms = {
        "a": LibvirtVm(name="a"),
        "b": LibvirtVm(name="b"),
        "c": LibvirtVm(name="c", connection="qemu:///session"),
    }
    session = core.Session(vms, StateStore(tmp_path))
    assert session.backend("a") is session.backend("b") is not session.backend("c")
    assert built == ["a", "c"]


def test_cli_shorthand_keeps_backend_and_connection(tmp_path):
    _, vm = shorthand("/srv", "devvm:/mnt/x", base=tmp_path, connection="qemu:///session")
    assert vm == LibvirtVm(name="devvm", connection="qemu:///session")
    _, vm = shorthand("/srv", "devvm:/mnt/x", base=tmp_path, backend="virtualbox")
    assert isinstance(vm, VirtualboxVm)


def test_schema_is_a_discriminated_union_of_every_backend():
    schema = json_schema()
    vm = schema["properties"]["vm"]["additionalProperties"]
    assert vm["discriminator"]["propertyName"] == "backend"
    assert set(vm["discriminator"]["mapping"]) == set(MODELS)
    assert len(vm["oneOf"]) == len(MODELS)
    defs = schema["$defs"]
    assert "password" in defs["VsphereVm"]["properties"] and "SecretRef" in defs


# ------------------------------------------------------------- state written by older vmshare

STATE_FROM_MAIN = """{
 "version": 3,
 "shares": {
  "devvm:/mnt/src": {
   "key": "devvm:/mnt/src",
   "name": null,
   "vm": "devvm",
   "vm_spec": {
    "name": "devvm",
    "backend": "libvirt",
    "connection": "qemu:///session",
    "guest": {"channel": "auto", "os": "linux", "ssh_host": null, "ssh_user": "root",
              "ssh_port": 22, "ssh_key": null, "ssh_known_hosts": null},
    "client_address": null,
    "host_address": null
   },
   "source": "/srv/src",
   "target": "/mnt/src",
   "protocol": "virtiofs",
   "tag": "vmshare-abc",
   "readonly": false,
   "detach_restarts": false,
   "requested": {"protocol": "auto"},
   "origin": "cli",
   "created": "2026-11-01T10:00:00+00:00",
   "steps": [
    {"share": "devvm:/mnt/src", "layer": "guest", "action": "mount", "vm": "devvm",
     "args": {"target": "/mnt/src"}, "summary": "mount /mnt/src", "reason": null, "undo": null}
   ],
   "pending": []
  }
 }
}
"""


def test_a_state_file_written_by_main_loads_as_libvirt_settings(tmp_path):
    (tmp_path / "state.json").write_text(STATE_FROM_MAIN)
    store = StateStore(tmp_path)
    record = store.load().shares["devvm:/mnt/src"]
    old = GuestAccess(os="linux")  # what main wrote: the only OS it knew
    assert record.vm_spec == LibvirtVm(name="devvm", connection="qemu:///session", guest=old)
    store.save(store.load())
    saved = json.loads((tmp_path / "state.json").read_text())
    old_spec = json.loads(STATE_FROM_MAIN)["shares"]["devvm:/mnt/src"]["vm_spec"]
    new_spec = saved["shares"]["devvm:/mnt/src"]["vm_spec"]
    # every setting main wrote is kept as it was; newer settings are added with their defaults
    assert {k: v for k, v in new_spec.items() if k != "guest"} == {
        k: v for k, v in old_spec.items() if k != "guest"
    }
    assert old_spec["guest"].items() <= new_spec["guest"].items()


def test_a_null_connection_of_older_state_is_the_default():
    doc = json.loads(STATE_FROM_MAIN)
    doc["shares"]["devvm:/mnt/src"]["vm_spec"]["connection"] = None
    from vmshare.state import State

    assert State.model_validate(doc).shares["devvm:/mnt/src"].vm_spec.connection == (
        "qemu:///system"
    )


def test_spec_vm_accepts_every_backend_at_once():
    text = "".join(f'[vm."{name}"]\n{table}\n' for name, table in TABLES.items())
    spec = parse_spec(text)
    assert {name: type(vm) for name, vm in spec.vm.items()} == MODELS
    assert Spec.model_validate(spec.model_dump()) == spec


def test_a_missing_key_points_at_its_vm_table_not_at_the_next(tmp_path):
    text = (
        '[vm.x]\nbackend = "vsphere"\nuser = "u"\npassword_env = "FAKE_PW"\n\n'
        f"[vm.y]\n{TABLES['vsphere']}"
    )
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert ":1: vm.x.server: missing key 'server' (this table needs: user, password, server)" in (
        info.value.message
    )


def test_vmshare_schema_prints_the_union(capsys):
    from vmshare.cli import main

    with pytest.raises(SystemExit) as info:
        main(["schema"])
    assert info.value.code == 0
    schema = json.loads(capsys.readouterr().out)
    vm = schema["properties"]["vm"]["additionalProperties"]
    assert sorted(vm["discriminator"]["mapping"]) == sorted(MODELS)
    refs = {ref["$ref"].rsplit("/", 1)[-1] for ref in vm["oneOf"]}
    assert refs == {model.__name__ for model in MODELS.values()}


def test_add_takes_a_vm_host_toml_describes_and_checks_the_command_line_against_it(tmp_path):
    from vmshare.spec import HostSettings

    host = HostSettings.model_validate(
        {
            "vm": {
                "vc1": {
                    "backend": "vsphere",
                    "server": "vc.example:8443",
                    "user": "svc",
                    "password_env": "VC_PW",
                },
                "kvm1": {"connection": "qemu:///session"},
            }
        }
    )
    _, vm = shorthand(str(tmp_path), "vc1:/mnt/x", known=host.vm)
    assert isinstance(vm, VsphereVm) and vm.server == "vc.example:8443"
    assert shorthand(str(tmp_path), "vc1:/mnt/x", backend="vmware", known=host.vm)[1] == vm
    with pytest.raises(SpecError, match=r"is a vsphere VM in host\.toml"):
        shorthand(str(tmp_path), "vc1:/mnt/x", backend="libvirt", known=host.vm)
    with pytest.raises(SpecError, match="--connection is a libvirt setting"):
        shorthand(str(tmp_path), "vc1:/mnt/x", connection="qemu:///system", known=host.vm)
    _, kvm = shorthand(str(tmp_path), "kvm1:/mnt/x", connection="qemu:///system", known=host.vm)
    assert kvm.connection == "qemu:///system"
    _, other = shorthand(str(tmp_path), "other:/mnt/x", known=host.vm)
    assert isinstance(other, LibvirtVm)
