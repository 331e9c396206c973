"""BackendContract: what every hypervisor backend does, whatever its SDK.

An implementation opts in with one short class in a ``test_backend_*.py`` file that subclasses
``BackendContract`` and provides two fixtures: ``backend`` (the Backend) and ``vm`` (the name of a
VM the contract may change). A backend with device shares subclasses ``DeviceBackendContract``
instead and adds ``device`` (a device protocol the VM offers): its VM gets a share device in its
persistent scope and loses it again.
"""

from __future__ import annotations

import inspect as pyinspect

import pytest

from vmshare.backends.base import Backend
from vmshare.errors import VmshareError

MISSING_VM = "vmshare-contract-no-such-vm"
TAG = "vmshare-contract0000000"


class BackendContract:
    def test_verbs_are_keyword_only(self, backend: Backend):
        verbs = ("attach_share", "detach_share", "prepare", "start", "restart", "stop")
        for verb in (*verbs, "record_share", "forget_share"):
            params = list(pyinspect.signature(getattr(backend, verb)).parameters.values())
            assert params and all(p.kind is p.KEYWORD_ONLY for p in params), verb

    def test_a_missing_vm_is_a_fact_not_an_error(self, backend: Backend):
        with backend.sdk_errors():
            facts = backend.inspect(MISSING_VM)
        assert not facts.exists and facts.backend == backend.name
        assert facts.find_hint  # says how to find the right name

    def test_facts_carry_consistent_capabilities(self, backend: Backend, vm: str):
        with backend.sdk_errors():
            facts = backend.inspect(vm)
        caps = facts.capabilities
        protocols = [d.protocol for d in caps.devices]
        assert facts.exists and len(protocols) == len(set(protocols))
        assert set(caps.network) <= {"nfs", "smb"} and protocols + caps.network
        assert all(d.semantics for d in caps.devices)
        assert all(d.hotplug or d.hotplug_off for d in caps.devices)

    def test_records_are_kept_replaced_and_forgotten_or_refused(self, backend: Backend, vm: str):
        """With ``records`` a record is kept (the last one wins), read back by inspect and
        forgotten idempotently; a backend without refuses both verbs."""
        if not backend.inspect(vm).capabilities.records:
            for verb, args in (("record_share", {"record": {"key": "x"}}), ("forget_share", {})):
                with pytest.raises(VmshareError), backend.sdk_errors():
                    getattr(backend, verb)(vm=vm, tag=TAG, **args)
            return
        for value in ("first", "second", "second"):
            with backend.sdk_errors():
                backend.record_share(vm=vm, tag=TAG, record={"key": f"{vm}:/x", "v": value})
        assert backend.inspect(vm).records[TAG] == {"key": f"{vm}:/x", "v": "second"}
        for _ in range(2):  # gone already: a no-op
            with backend.sdk_errors():
                backend.forget_share(vm=vm, tag=TAG)
        assert TAG not in backend.inspect(vm).records

    def test_sdk_failures_become_vmshare_errors(self, backend: Backend):
        with pytest.raises(VmshareError), backend.sdk_errors():
            backend.detach_share(vm=MISSING_VM, tag=TAG, scopes=["persistent"])

    def test_close_twice_is_harmless(self, backend: Backend, vm: str):
        backend.inspect(vm)
        backend.close()
        backend.close()


class DeviceBackendContract(BackendContract):
    def test_the_device_is_offered(self, backend: Backend, vm: str, device: str):
        assert backend.inspect(vm).capabilities.device(device) is not None

    def test_prepare_clears_what_the_capabilities_list_as_missing(
        self, backend: Backend, vm: str, device: str
    ):
        prepare_for(backend, vm, device)

    def test_attach_is_idempotent_and_detach_takes_exactly_it_away(
        self, backend: Backend, vm: str, device: str, tmp_path
    ):
        source = str(tmp_path)
        prepare_for(backend, vm, device)
        before = backend.inspect(vm).persistent_devices
        for _ in range(2):
            with backend.sdk_errors():
                backend.attach_share(
                    vm=vm,
                    tag=TAG,
                    source=source,
                    protocol=device,
                    readonly=False,
                    scopes=["persistent"],
                )
        after = backend.inspect(vm).persistent_devices
        assert set(after) - set(before) == {TAG}
        assert (after[TAG].source, after[TAG].protocol) == (source, device)
        for _ in range(2):  # gone already: a no-op
            with backend.sdk_errors():
                backend.detach_share(vm=vm, tag=TAG, scopes=["running", "persistent"])
        assert backend.inspect(vm).persistent_devices == before


def prepare_for(backend: Backend, vm: str, device: str) -> None:
    """Prepare what the capabilities list as missing; afterwards nothing is."""
    capability = backend.inspect(vm).capabilities.device(device)
    assert capability is not None
    for prerequisite in capability.missing:
        with backend.sdk_errors():
            backend.prepare(vm=vm, prerequisite=prerequisite.name)
    capability = backend.inspect(vm).capabilities.device(device)
    assert capability is not None and capability.missing == []
