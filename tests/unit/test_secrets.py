"""References to the user's credentials: resolved only when asked, never stored or shown."""

import json
import sys
import types

import pytest
from pydantic import ValidationError

from vmshare.errors import BackendUnavailable, NotFoundError, UsageError
from vmshare.secret_value import redact
from vmshare.secrets import SecretRef, resolve_secret
from vmshare.spec import parse_spec
from vmshare.state import ShareRecord, State

FAKE_VALUE = "fake-secret-value-0123"  # an obvious fake, never a real credential

# one [vm.x] table per backend, each holding every secret reference it can
TABLES = {
    "libvirt": 'backend = "libvirt"\n',
    "vsphere": (
        'backend = "vsphere"\nserver = "vc.example.test"\nuser = "svc"\n'
        'password_env = "VMSHARE_TEST_FAKE_PW"\n'
    ),
    "vmware-desktop": 'backend = "vmware-desktop"\nvmx = "/vms/a.vmx"\n',
    "virtualbox": 'backend = "virtualbox"\n',
    "hyperv": (
        'backend = "hyperv"\nwinrm = "winrms://hv.example.test"\nuser = "svc"\n'
        'password = { env = "VMSHARE_TEST_FAKE_PW" }\n'
    ),
}


@pytest.mark.parametrize(
    "fields",
    [{}, {"env": "A", "prompt": True}, {"env": "A", "keyring": "s/u"}, {"prompt": False}],
)
def test_a_reference_names_exactly_one_source(fields):
    with pytest.raises(ValidationError, match="exactly one"):
        SecretRef(**fields)


@pytest.mark.parametrize(("fields", "fragment"), [({"env": "1A"}, "env"), ({"keyring": "x"}, "")])
def test_references_are_checked(fields, fragment):
    with pytest.raises(ValidationError, match=fragment or "service/user"):
        SecretRef(**fields)


def test_env_reference_resolves_and_a_missing_one_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("VMSHARE_TEST_FAKE_PW", FAKE_VALUE)
    assert resolve_secret(SecretRef(env="VMSHARE_TEST_FAKE_PW"), "the pw").reveal() == FAKE_VALUE
    monkeypatch.delenv("VMSHARE_TEST_FAKE_PW")
    with pytest.raises(UsageError, match="VMSHARE_TEST_FAKE_PW is not set") as info:
        resolve_secret(SecretRef(env="VMSHARE_TEST_FAKE_PW"), "the pw")
    assert "export VMSHARE_TEST_FAKE_PW" in (info.value.hint or "")


def _fake_keyring(monkeypatch, entries, fail=False):
    errors = types.ModuleType("keyring.errors")

    class KeyringError(Exception):
        pass

    errors.KeyringError = KeyringError
    module = types.ModuleType("keyring")
    module.errors = errors
    asked = []

    def get_password(service, user):
        asked.append((service, user))
        if fail:
            raise KeyringError("locked " + FAKE_VALUE)
        return entries.get((service, user))

    module.get_password = get_password
    monkeypatch.setitem(sys.modules, "keyring", module)
    monkeypatch.setitem(sys.modules, "keyring.errors", errors)
    return asked


def test_keyring_reference_is_read_only_when_resolved(monkeypatch):
    asked = _fake_keyring(monkeypatch, {("vmshare-vsphere", "svc@x"): FAKE_VALUE})
    ref = SecretRef(keyring="vmshare-vsphere/svc@x")
    assert asked == []  # building the reference reads nothing
    assert resolve_secret(ref, "the pw").reveal() == FAKE_VALUE
    assert asked == [("vmshare-vsphere", "svc@x")]
    with pytest.raises(NotFoundError, match="keyring entry other/u not found"):
        resolve_secret(SecretRef(keyring="other/u"), "the pw")


def test_a_keyring_failure_says_so_without_its_text(monkeypatch):
    _fake_keyring(monkeypatch, {}, fail=True)
    with pytest.raises(BackendUnavailable) as info:
        resolve_secret(SecretRef(keyring="s/u"), "the pw")
    assert FAKE_VALUE not in str(info.value) and "keyring could not be read" in str(info.value)


def test_without_the_keyring_package_the_hint_installs_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "keyring", None)  # import fails
    with pytest.raises(BackendUnavailable, match="needs the Python package 'keyring'"):
        resolve_secret(SecretRef(keyring="s/u"), "the pw")


@pytest.mark.parametrize(("ci", "tty", "why"), [("true", True, "CI=true"), ("", False, "no term")])
def test_prompt_is_refused_in_ci_and_without_a_terminal(monkeypatch, ci, tty, why):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: tty, raising=False)
    with pytest.raises(UsageError, match=why) as info:
        resolve_secret(SecretRef(prompt=True), "the vSphere password")
    assert "\n" not in info.value.message and "password_env" in (info.value.hint or "")


def test_prompt_asks_at_a_terminal(monkeypatch):
    import getpass

    monkeypatch.setenv("CI", "")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(getpass, "getpass", lambda prompt: FAKE_VALUE)
    assert resolve_secret(SecretRef(prompt=True), "the pw").reveal() == FAKE_VALUE


def _record(vm_spec):
    return ShareRecord(
        key="x:/mnt/a",
        vm="x",
        vm_spec=vm_spec,
        source="/srv/a",
        target="/mnt/a",
        protocol="smb",
        tag="vmshare-x",
        readonly=False,
        requested={},
        origin="cli",
        created="2026-11-01T00:00:00+00:00",
    )


@pytest.mark.parametrize("backend", list(TABLES))
def test_no_secret_reaches_state_json_or_any_model_text(monkeypatch, backend):
    monkeypatch.setenv("VMSHARE_TEST_FAKE_PW", FAKE_VALUE)
    vm = parse_spec(f"[vm.x]\n{TABLES[backend]}").vm_for("x")
    password = getattr(vm, "password", None)
    if password is not None:  # resolved as a backend would, right before using it
        secret = resolve_secret(password, "the pw")
        assert secret.reveal() == FAKE_VALUE
        assert FAKE_VALUE not in f"{secret!r} {secret} {password!r} {password}"
    record = _record(vm)
    state = State(shares={record.key: record})
    texts = [
        json.dumps(state.model_dump(mode="json")),
        record.model_dump_json(),
        repr(record),
        str(record),
        repr(vm),
        str(vm),
        json.dumps(vm.model_dump(mode="json")),
    ]
    for text in texts:
        assert FAKE_VALUE not in text
    if password is not None:
        assert redact(f"x {FAKE_VALUE} y") == "x *** y"  # a resolved secret is redacted too


def test_an_empty_or_blank_secret_redacts_nothing() -> None:
    from vmshare.secret_value import Secret, redact

    Secret("")
    Secret(" \t")
    Secret(" ")
    assert redact("The virtual machine is not powered on") == (
        "The virtual machine is not powered on"
    )
