"""The vCenter simulator test bed (tests/testbed/vcsim) seen by a real vSphere client.

Real pyvmomi on the wire against the launcher built from Debian's govmomi simulator; the
simulated VM ``vmshare-vc`` stands for the session's QEMU test guest, so guest operations are
checked from the guest's side through its agent.
"""

from __future__ import annotations

import os
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl
from tests.testbed.fixtures import Guest
from tests.testbed.vcsim import Vcsim

pytestmark = pytest.mark.integration


@pytest.fixture
def si(vcsim: Vcsim) -> Iterator[vim.ServiceInstance]:
    with vcsim.connected() as si:
        yield si


def find_vm(
    si: vim.ServiceInstance, name: str, props: list[str]
) -> tuple[vim.VirtualMachine, dict]:
    """One ContainerView + one PropertyCollector call for just these properties of every VM."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[
                vmodl.query.PropertyCollector.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[
                        vmodl.query.PropertyCollector.TraversalSpec(
                            name="view", path="view", skip=False, type=vim.view.ContainerView
                        )
                    ],
                )
            ],
            propSet=[
                vmodl.query.PropertyCollector.PropertySpec(
                    type=vim.VirtualMachine, pathSet=["name", *props]
                )
            ],
        )
        collector = content.propertyCollector
        result = collector.RetrievePropertiesEx(
            [spec], vmodl.query.PropertyCollector.RetrieveOptions()
        )
        found = []
        while result is not None:
            for obj in result.objects:
                values = {p.name: p.val for p in obj.propSet}
                if values["name"] == name:
                    found.append((obj.obj, values))
            result = collector.ContinueRetrievePropertiesEx(result.token) if result.token else None
    finally:
        view.Destroy()
    assert len(found) == 1, found
    return found[0]


def guest_auth(
    vcsim: Vcsim, password: str | None = None
) -> vim.vm.guest.NamePasswordAuthentication:
    return vim.vm.guest.NamePasswordAuthentication(
        username=vcsim.guest_user, password=password or vcsim.guest_password
    )


def transfer_url(url: str, vcsim: Vcsim) -> str:
    """The client's part, as with real ESXi: a `*` host means the server the client talks to."""
    return url.replace("://*/", f"://{vcsim.host}:{vcsim.port}/", 1)


def http(method: str, url: str, vcsim: Vcsim, data: bytes | None = None) -> bytes:
    context = ssl.create_default_context(cafile=str(vcsim.ca_file))  # verified: this run's CA
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, context=context, timeout=60) as reply:
        assert reply.status == 200
        return reply.read()


def test_login_and_wrong_password(vcsim: Vcsim, si: vim.ServiceInstance) -> None:
    about = si.RetrieveContent().about
    assert about.apiType == "VirtualCenter"
    assert si.content.sessionManager.currentSession.userName == vcsim.username
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(
            host=vcsim.host,
            port=vcsim.port,
            user=vcsim.username,
            pwd=vcsim.password + "x",
            disableSslCertValidation=True,
        )


def test_tls_is_verified_against_this_runs_ca(vcsim: Vcsim) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        SmartConnect(
            host=vcsim.host,
            port=vcsim.port,
            user=vcsim.username,
            pwd=vcsim.password,
            sslContext=ssl.create_default_context(),
        )
    si = SmartConnect(
        host=vcsim.host,
        port=vcsim.port,
        user=vcsim.username,
        pwd=vcsim.password,
        sslContext=ssl.create_default_context(cafile=str(vcsim.ca_file)),
    )
    Disconnect(si)


def test_inventory_and_guest_info(vcsim: Vcsim, si: vim.ServiceInstance) -> None:
    props = [
        "runtime.powerState",
        "guest.ipAddress",
        "guest.net",
        "guest.toolsRunningStatus",
        "guest.toolsVersion",
        "guest.guestFamily",
        "config.instanceUuid",
    ]
    vm, values = find_vm(si, vcsim.vm, props)
    assert vm._moId == vcsim.vm_ref
    assert values["runtime.powerState"] == "poweredOn"
    assert values["guest.ipAddress"] == vcsim.guest_ip == "127.0.0.1"
    assert values["guest.toolsRunningStatus"] == "guestToolsRunning"
    assert int(values["guest.toolsVersion"]) > 0
    assert values["guest.guestFamily"] == "linuxGuest"
    (nic,) = values["guest.net"]
    assert nic.connected and list(nic.ipAddress) == [vcsim.guest_ip]
    assert nic.ipConfig.ipAddress[0].ipAddress == vcsim.guest_ip
    # the rest of the inventory: a datacenter, a cluster of hosts, VMs without Tools
    content = si.RetrieveContent()
    (datacenter,) = content.rootFolder.childEntity
    (cluster,) = datacenter.hostFolder.childEntity
    assert isinstance(cluster, vim.ClusterComputeResource) and len(cluster.host) == vcsim.hosts
    others = [v for v in datacenter.vmFolder.childEntity if v.name != vcsim.vm]
    assert len(others) == vcsim.vms - 1
    assert {v.guest.toolsRunningStatus for v in others} == {"guestToolsNotRunning"}
    assert (
        content.searchIndex.FindByUuid(None, values["config.instanceUuid"], True, True)._moId
        == vm._moId
    )


def wait_for_exit(si: vim.ServiceInstance, vm, auth, pid: int, timeout: float = 60):
    manager = si.RetrieveContent().guestOperationsManager.processManager
    deadline = time.monotonic() + timeout
    while True:
        (info,) = manager.ListProcessesInGuest(vm, auth, [pid])
        if info.endTime is not None:
            return info
        assert time.monotonic() < deadline, f"pid {pid} still running"
        time.sleep(0.1)


def test_program_runs_in_the_real_guest(
    vcsim: Vcsim, si: vim.ServiceInstance, guest: Guest
) -> None:
    vm, _ = find_vm(si, vcsim.vm, [])
    auth = guest_auth(vcsim)
    target = f"/tmp/vcsim-{uuid.uuid4().hex}"
    manager = si.RetrieveContent().guestOperationsManager.processManager
    spec = vim.vm.guest.ProcessManager.ProgramSpec(
        programPath="/bin/sh", arguments=f"-c 'echo hi > {target}; exit 3'"
    )
    pid = manager.StartProgramInGuest(vm, auth, spec)
    info = wait_for_exit(si, vm, auth, pid)
    assert info.exitCode == 3 and info.pid == pid and info.name == "sh"
    assert guest.read(target) == b"hi\n"
    # exit code 0 is reported as 0 (not left out), the working directory and environment apply
    spec = vim.vm.guest.ProcessManager.ProgramSpec(
        programPath="/bin/sh",
        arguments=f"""-c 'pwd > {target}; echo "$VMSHARE_X" >> {target}'""",
        workingDirectory="/etc",
        envVariables=["VMSHARE_X=it's here"],
    )
    info = wait_for_exit(si, vm, auth, manager.StartProgramInGuest(vm, auth, spec))
    assert info.exitCode == 0
    assert guest.read(target) == b"/etc\nit's here\n"
    assert pid in {p.pid for p in manager.ListProcessesInGuest(vm, auth)}
    with pytest.raises(vim.fault.FileNotFound):
        manager.StartProgramInGuest(
            vm, auth, vim.vm.guest.ProcessManager.ProgramSpec(programPath="/no/such", arguments="")
        )


def test_terminate_process(vcsim: Vcsim, si: vim.ServiceInstance, guest: Guest) -> None:
    vm, _ = find_vm(si, vcsim.vm, [])
    auth = guest_auth(vcsim)
    manager = si.RetrieveContent().guestOperationsManager.processManager
    marker = f"/tmp/vcsim-{uuid.uuid4().hex}"
    spec = vim.vm.guest.ProcessManager.ProgramSpec(
        programPath="/bin/sh", arguments=f"-c 'sleep 600; touch {marker}'"
    )
    pid = manager.StartProgramInGuest(vm, auth, spec)
    started = time.monotonic()
    manager.TerminateProcessInGuest(vm, auth, pid)
    info = wait_for_exit(si, vm, auth, pid, timeout=30)
    assert info.exitCode != 0 and time.monotonic() - started < 30
    _, out, _ = guest.sh("ps | grep -c '[s]leep 600' || true")
    assert out == b"0\n" and guest.sh(f"test -e {marker}")[0] != 0
    with pytest.raises(vim.fault.GuestProcessNotFound):
        manager.TerminateProcessInGuest(vm, auth, pid)


def test_file_transfers_round_trip(vcsim: Vcsim, si: vim.ServiceInstance, guest: Guest) -> None:
    vm, _ = find_vm(si, vcsim.vm, [])
    auth = guest_auth(vcsim)
    files = si.RetrieveContent().guestOperationsManager.fileManager
    path = f"/tmp/vcsim-{uuid.uuid4().hex}.bin"
    data = bytes(range(256)) * 64 + os.urandom(4096) + b"\0\n\r'\"$(x)"
    url = files.InitiateFileTransferToGuest(
        vm,
        auth,
        path,
        vim.vm.guest.FileManager.PosixFileAttributes(permissions=0o640),
        len(data),
        False,
    )
    assert url.startswith("https://*/guestFile?")
    http("PUT", transfer_url(url, vcsim), vcsim, data)
    assert guest.read(path) == data
    code, mode, _ = guest.run("stat", "-c", "%a", path)
    assert code == 0 and mode == b"640\n"

    info = files.InitiateFileTransferFromGuest(vm, auth, path)
    assert info.size == len(data) and info.attributes.permissions == 0o640
    assert http("GET", transfer_url(info.url, vcsim), vcsim) == data

    with pytest.raises(vim.fault.FileAlreadyExists):
        files.InitiateFileTransferToGuest(
            vm, auth, path, vim.vm.guest.FileManager.FileAttributes(), 1, False
        )
    with pytest.raises(vim.fault.FileNotFound):
        files.InitiateFileTransferFromGuest(vm, auth, path + ".missing")
    url = files.InitiateFileTransferToGuest(
        vm, auth, path, vim.vm.guest.FileManager.FileAttributes(), 3, True
    )
    http("PUT", transfer_url(url, vcsim), vcsim, b"new")
    assert guest.read(path) == b"new"
    with pytest.raises(urllib.error.HTTPError):  # a transfer URL serves once
        http("PUT", transfer_url(url, vcsim), vcsim, b"new")


def test_guest_operation_faults(vcsim: Vcsim, si: vim.ServiceInstance) -> None:
    vm, _ = find_vm(si, vcsim.vm, [])
    content = si.RetrieveContent()
    wrong = guest_auth(vcsim, password=vcsim.guest_password + "x")
    spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath="/bin/true", arguments="")
    with pytest.raises(vim.fault.InvalidGuestLogin):
        content.guestOperationsManager.processManager.StartProgramInGuest(vm, wrong, spec)
    with pytest.raises(vim.fault.InvalidGuestLogin):
        content.guestOperationsManager.processManager.ListProcessesInGuest(vm, wrong)
    with pytest.raises(vim.fault.InvalidGuestLogin):
        content.guestOperationsManager.fileManager.InitiateFileTransferFromGuest(
            vm, wrong, "/etc/hostname"
        )
    # a VM whose Tools do not run has no guest operations
    other = next(v for v in content.rootFolder.childEntity[0].vmFolder.childEntity if v != vm)
    with pytest.raises(vim.fault.GuestOperationsUnavailable):
        content.guestOperationsManager.processManager.StartProgramInGuest(
            other, guest_auth(vcsim), spec
        )


def test_stops_without_leaving_a_process() -> None:
    with pytest.raises(RuntimeError, match="boom"), Vcsim(vms=2) as sim:
        pid = sim.proc.pid
        raise RuntimeError("boom")
    assert sim.proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_simulator_behaviours_the_backend_meets() -> None:
    """Pinned, so a change of Debian's govmomi is seen: two VMs of one name in different folders
    (an ambiguous lookup), and extraConfig that appends a key again instead of replacing it."""
    with Vcsim(vms=3) as sim, sim.connected() as si:
        content = si.RetrieveContent()
        (datacenter,) = content.rootFolder.childEntity
        first, second = (v for v in datacenter.vmFolder.childEntity if v.name != sim.vm)
        folder = datacenter.vmFolder.CreateFolder("team-b")
        WaitForTask(folder.MoveIntoFolder_Task([second]))
        WaitForTask(first.Rename_Task("dup"))
        WaitForTask(second.Rename_Task("dup"))
        found = content.searchIndex.FindByInventoryPath
        assert found(f"{datacenter.name}/vm/dup") == first
        assert found(f"{datacenter.name}/vm/team-b/dup") == second

        vm = content.searchIndex.FindByInventoryPath(f"{datacenter.name}/vm/{sim.vm}")
        for value in ("a", "b", ""):
            option = vim.option.OptionValue(key="guestinfo.vmshare.x", value=value)
            WaitForTask(vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[option])))
        values = [o.value for o in vm.config.extraConfig if o.key == "guestinfo.vmshare.x"]
        assert values == ["a", "b", ""]  # real vSphere keeps one: read the last


def test_a_thousand_vms() -> None:
    with Vcsim(vms=1000) as sim, sim.connected() as si:
        _, values = find_vm(si, sim.vm, ["guest.ipAddress"])
        assert values["guest.ipAddress"] == sim.guest_ip
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True
        )
        assert len(view.view) == sim.info["vms"] == 1000
        view.Destroy()
