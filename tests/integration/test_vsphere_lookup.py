"""Finding a vSphere VM: real pyVmomi against the vCenter simulator (no guest needed).

The inventory is rearranged once per module: two VMs named ``dup`` in two folders (an ambiguous
name), a VM whose name holds a '/', and a second, empty datacenter inside a folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import SoapAdapter, vim
from tests.testbed.vcsim import Vcsim

from vmshare.backends.vsphere.backend import VsphereBackend
from vmshare.backends.vsphere.lookup import inventory_path
from vmshare.backends.vsphere.settings import VsphereVm
from vmshare.errors import NotFoundError, UsageError

pytestmark = pytest.mark.integration
PASSWORD_ENV = "VMSHARE_IT_LOOKUP_PASSWORD"


@dataclass
class Inventory:
    sim: Vcsim
    datacenter: str
    uuid: str  # BIOS UUID of sim.vm
    instance_uuid: str
    dup_paths: list[str]
    slash_name: str  # as the server reports it (escaped)


@pytest.fixture(scope="module")
def inventory() -> Iterator[Inventory]:
    with Vcsim(vms=5) as sim, sim.connected() as si:
        content = si.RetrieveContent()
        (datacenter,) = content.rootFolder.childEntity
        first, second, third, *_ = (v for v in datacenter.vmFolder.childEntity if v.name != sim.vm)
        folder = datacenter.vmFolder.CreateFolder("team-b")
        WaitForTask(folder.MoveIntoFolder_Task([second]))
        WaitForTask(first.Rename_Task("dup"))
        WaitForTask(second.Rename_Task("dup"))
        WaitForTask(third.Rename_Task("build/linux"))
        content.rootFolder.CreateFolder("labs").CreateDatacenter("empty-dc")
        vm = content.searchIndex.FindByInventoryPath(f"{datacenter.name}/vm/{sim.vm}")
        yield Inventory(
            sim=sim,
            datacenter=datacenter.name,
            uuid=vm.config.uuid,
            instance_uuid=vm.config.instanceUuid,
            dup_paths=[f"{datacenter.name}/vm/dup", f"{datacenter.name}/vm/team-b/dup"],
            slash_name=third.name,
        )


@pytest.fixture
def backend(inventory: Inventory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(PASSWORD_ENV, inventory.sim.password)
    made: list[VsphereBackend] = []

    def make(**settings: Any) -> VsphereBackend:
        sim = inventory.sim
        vm = VsphereVm(
            name="lookup",
            server=f"{sim.host}:{sim.port}",
            user=sim.username,
            password_env=PASSWORD_ENV,
            ca_file=str(sim.ca_file),
            **settings,
        )
        made.append(VsphereBackend(vm))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SOAP request pyVmomi sends (a property read is a ``Fetch:prop``)."""
    seen: list[str] = []
    invoke = SoapAdapter.SoapStubAdapter.InvokeMethod

    def counting(self: Any, mo: Any, info: Any, args: Any, *rest: Any) -> Any:
        name = info.wsdlName
        seen.append(f"{name}:{args[0]}" if name == "Fetch" else name)
        return invoke(self, mo, info, args, *rest)

    monkeypatch.setattr(SoapAdapter.SoapStubAdapter, "InvokeMethod", counting)
    return seen


def test_by_name_path_and_uuids(backend: Any, inventory: Inventory) -> None:
    vs = backend()
    sim = inventory.sim
    wanted = vs._vm(sim.vm).obj._moId
    assert wanted == sim.vm_ref
    assert vs._vm(f"{inventory.datacenter}/vm/{sim.vm}").obj._moId == wanted
    assert vs._vm(inventory.uuid).obj._moId == wanted
    assert vs._vm(inventory.uuid.upper().replace("-", "")).obj._moId == wanted
    assert vs._vm(inventory.instance_uuid).obj._moId == wanted
    with pytest.raises(NotFoundError):
        vs._vm(f"{inventory.datacenter}/vm/team-b")
    facts = vs.inspect(sim.vm)
    assert facts.exists and facts.running and facts.uuid == inventory.uuid
    assert not vs.inspect("no-such-vm").exists


def test_inventory_path_is_what_find_by_inventory_path_takes(
    backend: Any, inventory: Inventory
) -> None:
    vs = backend()
    content = vs.content
    for path in inventory.dup_paths:
        found = content.searchIndex.FindByInventoryPath(path)
        assert isinstance(found, vim.VirtualMachine), path
        assert inventory_path(content, found) == path
    # a datacenter inside a folder keeps the folder in its path
    dc = content.searchIndex.FindByInventoryPath("labs/empty-dc")
    assert isinstance(dc, vim.Datacenter) and inventory_path(content, dc) == "labs/empty-dc"


def test_a_name_with_a_slash(backend: Any, inventory: Inventory) -> None:
    """Real vSphere stores '/' in a name as %2f; the simulator keeps it raw (and its
    FindByInventoryPath finds the VM under neither form). vmshare's paths always escape it,
    and the name as the client shows it is found through the index."""
    vs = backend()
    assert inventory.slash_name == "build/linux"  # the simulator does not escape
    found = vs._vm("build/linux")
    assert found.name == "build/linux"
    assert inventory_path(vs.content, found.obj) == f"{inventory.datacenter}/vm/build%2flinux"


def test_not_found_names_the_closest(backend: Any, inventory: Inventory) -> None:
    vs = backend()
    with pytest.raises(NotFoundError) as caught:
        vs._vm(inventory.sim.vm + "x")
    assert "not found" in caught.value.message
    assert caught.value.hint == f"did you mean {inventory.sim.vm!r}?"
    with pytest.raises(NotFoundError) as caught:
        vs._vm("zzzzzzzz")
    assert "did you mean" not in (caught.value.hint or "")
    assert "inventory path" in (caught.value.hint or "")


def test_an_ambiguous_name_lists_the_inventory_paths(backend: Any, inventory: Inventory) -> None:
    vs = backend()
    with pytest.raises(UsageError) as caught:
        vs._vm("dup")
    assert caught.value.message == "2 VMs are named 'dup': " + ", ".join(inventory.dup_paths)
    for path in inventory.dup_paths:  # each path it lists finds exactly that VM
        assert vs._vm(path).obj is not None
    assert vs._vm(inventory.dup_paths[0]).obj != vs._vm(inventory.dup_paths[1]).obj


def test_datacenter_restricts_the_search(backend: Any, inventory: Inventory) -> None:
    sim = inventory.sim
    inside = backend(datacenter=inventory.datacenter)
    assert inside._vm(sim.vm).obj._moId == sim.vm_ref
    assert inside._vm(f"{inventory.datacenter}/vm/{sim.vm}").obj._moId == sim.vm_ref
    empty = backend(datacenter="empty-dc")  # a datacenter inside a folder is found too
    with pytest.raises(NotFoundError, match="not found"):
        empty._vm(sim.vm)
    with pytest.raises(NotFoundError):
        empty._vm(f"{inventory.datacenter}/vm/{sim.vm}")
    assert not empty.inspect(sim.vm).exists
    unknown = backend(datacenter="nope")
    with pytest.raises(NotFoundError) as caught:
        unknown._vm(sim.vm)
    assert caught.value.message == f"datacenter 'nope' not found on {unknown.endpoint.label}"
    assert "datacenter" in (caught.value.hint or "")


def test_lookup_reads_the_index_in_one_collector_call(
    backend: Any, inventory: Inventory, calls: list[str]
) -> None:
    vs = backend(datacenter=inventory.datacenter)
    assert vs.content is not None  # the session: login and the service content
    calls.clear()
    vs._vm(inventory.sim.vm)
    view = ["CreateContainerView", "RetrievePropertiesEx", "DestroyView"]
    assert calls == [
        *view,  # the datacenters' names and VM folders (once per session)
        "RetrievePropertiesEx",  # the datacenter's inventory path, walked up in one call
        *view,  # names and UUIDs of every VM
    ], calls
    calls.clear()
    vs._vm(inventory.sim.vm)
    assert calls == [], calls  # found once per session
    calls.clear()
    vs._vm(inventory.uuid)
    assert calls == view, calls  # names and UUIDs in one read
    calls.clear()
    with pytest.raises(NotFoundError):
        vs._vm("missing")  # the closest names come from the index already read
    assert calls == view, calls
    calls.clear()
    with pytest.raises(UsageError):
        vs._vm("dup")  # the paths of both VMs: one more collector call, not one per VM
    assert calls == [*view, "RetrievePropertiesEx"], calls


def test_a_big_inventory_is_read_whole() -> None:
    """A big inventory is read whole (continuation pages where the server pages)."""
    with Vcsim(vms=1200) as sim:
        os.environ[PASSWORD_ENV] = sim.password
        try:
            vs = VsphereBackend(
                VsphereVm(
                    name="lookup",
                    server=f"{sim.host}:{sim.port}",
                    user=sim.username,
                    password_env=PASSWORD_ENV,
                    ca_file=str(sim.ca_file),
                )
            )
            try:
                from vmshare.backends.vsphere.lookup import vm_index

                assert len(vm_index(vs.content, vs._root()[0])) == 1200
                assert vs._vm(sim.vm).obj._moId == sim.vm_ref
            finally:
                vs.close()
        finally:
            del os.environ[PASSWORD_ENV]
