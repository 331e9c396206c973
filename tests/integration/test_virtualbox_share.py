"""VirtualBox end to end through the real CLI, with both adapters: pyvbox over the COM-level
fake (through the test bed's vboxapi) and the VBoxManage stand-in, over one machine model whose
VM stands for the session's QEMU guest. Guest commands go through guest control into the real
guest; a vboxsf folder that becomes active is a virtiofs device of the same host folder in the
test domain, which the guest's mount.vboxsf stand-in mounts (tests/testbed/vbox)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from tests.testbed.fixtures import (
    FileServers,
    Guest,
    VboxBed,
    Vmshare,
    make_tree,
    tree_digest,
    vbox_table,
    vbox_vm,
)

from vmshare.formats.fstab import parse_table
from vmshare.protocols import mount_tag

pytestmark = pytest.mark.integration
ADAPTERS = ["vboxmanage", "sdk"]


@pytest.fixture(params=ADAPTERS)
def adapter(request) -> str:
    return request.param


def test_the_plan_shows_the_exact_calls_apply_makes(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp, adapter
):
    """Done-when of issue 11: a dry run names each VBoxManage command or SDK call, with the
    share's own quoted values, and says why a running VM gets both folders (the SDK) or is
    stopped for its permanent folder (VBoxManage)."""
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, adapter)
    src = make_tree(open_tmp / "it's src")
    before = vbox_bed.model.read()
    tag = mount_tag(f"{vm.vm}:/mnt/plan")
    # VBoxManage adds a permanent folder only to a stopped VM: with --restart the plan stops
    # the VM for it (test_vboxmanage_stops_a_running_vm_for_its_permanent_folder)
    restart = ["--restart"] if adapter == "vboxmanage" else []
    result = vmshare.json("add", str(src), f"{vm.vm}:/mnt/plan", "--dry-run", *restart)
    assert result["ok"], result
    plan = result["data"]["plan"]
    assert plan["choices"][0]["protocol"] == "vboxsf"
    (attach,) = [s for s in plan["steps"] if s["action"] == "attach_share"]
    reason = attach["reason"]
    assert "symlink creation stays off for this folder" in reason
    calls = attach["script"].splitlines()
    if adapter == "vboxmanage":
        assert attach["args"]["scopes"] == ["persistent"]
        assert "(permanent folder)" in attach["summary"]
        assert "so the VM is stopped for the permanent folder and starts with it" in reason
        assert [shlex.split(c) for c in calls] == [
            ["VBoxManage", "sharedfolder", "add", vm.vm, "--name", tag, "--hostpath", str(src)],
        ]  # fmt: skip
    else:
        assert attach["args"]["scopes"] == ["running", "persistent"]
        assert "(transient folder and permanent folder)" in attach["summary"]
        assert "a transient folder now and the permanent folder too, so it survives" in reason
        args = f"'{tag}', {str(src)!r}, writable=True, automount=False, auto_mount_point=''"
        assert calls == [
            f"machine = vbox.find_machine('{vm.vm}')",
            "machine.lock_machine(session, LockType.shared)",
            f"session.console.create_shared_folder({args})",
            "session.unlock_machine()",
            f"machine = vbox.find_machine('{vm.vm}')",
            "machine.lock_machine(session, LockType.shared)",  # the VM runs
            f"session.machine.create_shared_folder({args})",
            "session.machine.save_settings()",
            "session.unlock_machine()",
        ]
    text = vmshare("add", str(src), f"{vm.vm}:/mnt/plan", "--dry-run", *restart, check=True)
    assert "sharedfolder add" in text.stdout or "create_shared_folder" in text.stdout
    assert tag in text.stdout
    assert vbox_bed.model.read() == before  # a plan changes nothing


def test_symlinks_on_a_running_vm_need_a_restart_and_the_plan_says_so(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp, adapter
):
    """VirtualBox reads the symlink key when the VM starts: the SDK adds the permanent folder
    to the running VM and restarts it; VBoxManage stops the VM, adds it and starts the VM."""
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, adapter, symlinks=True)
    src = make_tree(open_tmp / "links")
    tag = mount_tag(f"{vm.vm}:/mnt/links")
    blocked = vmshare("add", str(src), f"{vm.vm}:/mnt/links")
    assert blocked.returncode == 2, blocked.stderr
    why = {
        "sdk": "symlink creation (symlinks = true) takes effect only when the VM starts",
        "vboxmanage": "VBoxManage adds a permanent folder only to a stopped VM",
    }
    assert why[adapter] in blocked.stderr
    assert "--restart" in blocked.stderr
    result = vmshare.json("add", str(src), f"{vm.vm}:/mnt/links", "--restart", "--dry-run")
    steps = result["data"]["plan"]["steps"]
    (attach,) = [s for s in steps if s["action"] == "attach_share"]
    assert attach["args"]["scopes"] == ["persistent"]
    assert "symlink creation allowed for this folder" in attach["reason"]
    power = [s["action"] for s in steps if s["layer"] == "hypervisor"]
    if adapter == "sdk":
        assert power == ["attach_share", "restart"]
    else:
        assert power == ["stop", "attach_share", "start"]
        calls = [shlex.split(c) for c in attach["script"].splitlines()]
        assert calls == [
            ["VBoxManage", "setextradata", vm.vm,
             f"VBoxInternal2/SharedFoldersEnableSymlinksCreate/{tag}", "1"],
            ["VBoxManage", "sharedfolder", "add", vm.vm, "--name", tag, "--hostpath", str(src)],
        ]  # fmt: skip
    assert vbox_bed.model.machine(vm.vm)["extradata"] == {}
    vmshare("add", str(src), f"{vm.vm}:/mnt/links", "--restart", "--yes", check=True)
    machine = vbox_bed.model.machine(vm.vm)
    key = f"VBoxInternal2/SharedFoldersEnableSymlinksCreate/{tag}"
    assert machine["extradata"] == {key: "1"} and machine["state"] == "running"
    assert guest.read("/mnt/links/hello.txt") == b"hello from the host\n"
    vmshare("remove", f"{vm.vm}:/mnt/links", "--restart", check=True)
    machine = vbox_bed.model.machine(vm.vm)
    assert machine["extradata"] == {} and machine["folders"] == []
    assert machine["state"] == "running"


def test_a_vboxsf_share_crosses_both_ways_and_remove_takes_exactly_it_away(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp, adapter
):
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, adapter)
    vbox_bed.model.set_extradata(vm.vm, "GUI/Something", "the user's")  # not vmshare's
    src = make_tree(open_tmp / "src")
    target, tag = "/mnt/vb", mount_tag(f"{vm.vm}:/mnt/vb")
    fstab_before = guest.fstab()
    # VBoxManage: the VM is stopped for the permanent folder and starts with it (--restart)
    restart = ["--restart"] if adapter == "vboxmanage" else []
    result = vmshare.json("add", str(src), f"{vm.vm}:{target}", *restart)
    assert result["ok"], result
    machine = vbox_bed.model.machine(vm.vm)
    assert [f["name"] for f in machine["folders"]] == [tag]  # permanent: the share persists
    live = [f["name"] for f in machine["transient"]]
    assert live == ([] if restart else [tag])  # the SDK's transient folder joins it now
    assert machine["state"] == "running"
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    assert guest.sh('printf guest > "$1/from-guest"', target)[0] == 0
    assert (src / "from-guest").read_text() == "guest"
    helper_log = guest.read("/run/mount.vboxsf.log").decode()
    assert f"mount.vboxsf {tag} {target} -o uid=0,gid=0" in helper_log
    (entry,) = [e for e in parse_table(guest.fstab()) if e.target == target]
    assert (entry.source, entry.fstype) == (tag, "vboxsf")
    assert "_netdev" in entry.options
    assert (
        vmshare.json("add", str(src), f"{vm.vm}:{target}", "--dry-run")["data"]["plan"]["steps"]
        == []
    )
    digest = tree_digest(src)
    vmshare("remove", f"{vm.vm}:{target}", *restart, check=True)
    machine = vbox_bed.model.machine(vm.vm)
    assert machine["folders"] == [] and machine["transient"] == []
    assert machine["extradata"] == {"GUI/Something": "the user's"}
    assert machine["state"] == "running"
    assert target not in guest.mounts() and guest.fstab() == fstab_before
    assert tree_digest(src) == digest


def test_vboxmanage_stops_a_running_vm_for_its_permanent_folder(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp
):
    """VBoxManage adds and removes a permanent folder only under the VM's write lock, which
    VirtualBox refuses while the VM runs: without --restart the add and the remove stop before
    any change, saying why and what else would do; with it the VM is stopped around the
    folder's change and started again."""
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, "vboxmanage")
    src = make_tree(open_tmp / "locked")
    target, tag = "/mnt/locked", mount_tag(f"{vm.vm}:/mnt/locked")
    before, fstab = vbox_bed.model.read(), guest.fstab()
    blocked = vmshare("add", str(src), f"{vm.vm}:{target}")
    assert blocked.returncode == 2, blocked.stderr
    assert (
        "VBoxManage adds a permanent folder only to a stopped VM (it needs the VM's write "
        f"lock): pass --restart so vmshare stops VM '{vm.vm}' for it (graceful shutdown) and "
        'starts it again, set adapter = "sdk" (VirtualBox\'s API adds it while the VM runs), '
        "or pass --no-persist for a transient folder only"
    ) in " ".join(blocked.stderr.split())
    assert vbox_bed.model.read() == before and guest.fstab() == fstab
    assert target not in guest.mounts() and vmshare.shares() == []
    shown = vmshare.json("add", str(src), f"{vm.vm}:{target}", "--restart", "--dry-run")
    steps = shown["data"]["plan"]["steps"]
    assert [s["action"] for s in steps[:3]] == ["stop", "attach_share", "start"]
    assert f"VBoxManage controlvm {vm.vm} acpipowerbutton" in steps[0]["script"]
    assert steps[2]["script"] == f"VBoxManage startvm {vm.vm} --type headless"
    result = vmshare.json("add", str(src), f"{vm.vm}:{target}", "--restart")
    assert result["ok"], result
    machine = vbox_bed.model.machine(vm.vm)
    assert machine["state"] == "running" and [f["name"] for f in machine["folders"]] == [tag]
    assert guest.read(f"{target}/hello.txt") == b"hello from the host\n"
    applied = vbox_bed.model.read()
    refused = vmshare("remove", f"{vm.vm}:{target}")
    assert refused.returncode == 2, refused.stderr
    text = " ".join(refused.stderr.split())
    assert "VBoxManage removes a permanent folder only from a stopped VM" in text
    assert 'set adapter = "sdk"' in text and "nothing was removed" in text
    assert vbox_bed.model.read() == applied  # nothing half-done: the guest keeps its mount
    assert target in guest.mounts() and len(vmshare.shares()) == 1
    shown = vmshare.json("remove", f"{vm.vm}:{target}", "--restart", "--dry-run")
    actions = [s["action"] for s in shown["data"]["plan"]["steps"]]
    at = actions.index("detach_share")
    assert actions[at - 1 : at + 2] == ["stop", "detach_share", "start"]
    assert actions.index("unmount") < at  # the guest lets go while the VM runs
    vmshare("remove", f"{vm.vm}:{target}", "--restart", check=True)
    machine = vbox_bed.model.machine(vm.vm)
    assert machine["state"] == "running" and machine["folders"] == []
    assert target not in guest.mounts() and guest.fstab() == fstab and vmshare.shares() == []


def test_a_running_vm_without_persist_gets_a_transient_folder_only(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp
):
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, "vboxmanage")
    src = make_tree(open_tmp / "tmp-only")
    result = vmshare.json("add", str(src), f"{vm.vm}:/mnt/tr", "--no-persist")
    assert result["ok"], result
    (attach,) = [s for s in result["data"]["plan"]["steps"] if s["action"] == "attach_share"]
    assert "a transient folder only, gone when the VM powers off" in attach["reason"]
    machine = vbox_bed.model.machine(vm.vm)
    assert machine["folders"] == [] and len(machine["transient"]) == 1
    assert guest.read("/mnt/tr/hello.txt") == b"hello from the host\n"
    vmshare("remove", f"{vm.vm}:/mnt/tr", check=True)
    assert vbox_bed.model.machine(vm.vm)["transient"] == []


def test_the_share_survives_a_guest_reboot_through_the_fstab_block(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp
):
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, "sdk")
    src = make_tree(open_tmp / "boot")
    vmshare("add", str(src), f"{vm.vm}:/mnt/boot", check=True)
    guest.reboot()  # the VM keeps running (a guest reboot): its folders stay
    assert guest.mounts()["/mnt/boot"][0] == mount_tag(f"{vm.vm}:/mnt/boot")
    assert guest.read("/mnt/boot/hello.txt") == b"hello from the host\n"
    vmshare("remove", f"{vm.vm}:/mnt/boot", check=True)


@pytest.mark.parametrize("protocol", ["nfs", "smb"])
def test_a_guest_without_guest_additions_uses_a_network_share_end_to_end(
    ssh_guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp, protocol
):
    """No Guest Additions: no vboxsf and no guest control, so vmshare reaches the guest over
    ssh and shares over NFS (auto, saying why) or SMB (asked for), from the loopback
    nfs-ganesha or Samba; under VirtualBox NAT the export is granted to 127.0.0.1 and the
    guest dials 10.0.2.2."""
    access = ssh_guest.access
    guest_table = (
        f'channel = "ssh"\nssh_host = "{access.ssh_host}"\nssh_port = {access.ssh_port}\n'
        f'ssh_key = "{access.ssh_key}"\nssh_known_hosts = "{access.ssh_known_hosts}"\n'
    )
    vm = vbox_vm(
        vbox_bed, servers, vmshare, ssh_guest.name, "vboxmanage", name="noga",
        guest_additions=None, guest=guest_table,
    )  # fmt: skip
    src = make_tree(open_tmp / protocol, owner=(33, 33))
    target = f"/mnt/{protocol}"
    asked = [] if protocol == "nfs" else ["--protocol", "smb"]
    result = vmshare.json("add", str(src), f"{vm.vm}:{target}", *asked)
    assert result["ok"], result
    choice = result["data"]["plan"]["choices"][0]
    assert choice["protocol"] == protocol
    if protocol == "nfs":
        assert "reports no Guest Additions" in choice["reason"]
        assert "127.0.0.1" in servers.ganesha.exports_path.read_text()  # the NAT's address
    code, out, _ = ssh_run(ssh_guest, ["cat", f"{target}/hello.txt"])
    assert (code, out) == (0, b"hello from the host\n")
    code, _, err = ssh_run(ssh_guest, ["sh", "-c", f'echo back > "{target}/back.txt"'])
    assert code == 0, err
    assert (src / "back.txt").read_text() == "back\n"
    mounts = ssh_run(ssh_guest, ["cat", "/proc/mounts"])[1].decode()
    assert "10.0.2.2" in mounts and f" {target} " in mounts
    assert vbox_bed.model.machine(vm.vm)["folders"] == []  # no VirtualBox folder at all
    vmshare("remove", f"{vm.vm}:{target}", check=True)
    assert f" {target} " not in ssh_run(ssh_guest, ["cat", "/proc/mounts"])[1].decode()


def ssh_run(ssh_guest, argv: list[str]) -> tuple[int, bytes, bytes]:
    from vmshare.guest.ssh import SshChannel

    result = SshChannel(ssh_guest.access).run(argv)
    return result.exit_code, result.stdout, result.stderr


def test_a_vm_that_vanishes_mid_apply_is_a_clear_error_and_the_host_keeps_nothing(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp
):
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, "vboxmanage")
    src = open_tmp / "made-by-vmshare"  # a host folder the plan creates first
    fstab = guest.fstab()
    proc = vmshare(
        "add", str(src), f"{vm.vm}:/mnt/gone", "--create", "--restart",
        env={"VMSHARE_VBOX_VANISH": f"{vm.vm}@sharedfolder add"},
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert f"Could not find a registered machine named '{vm.vm}'" in proc.stderr
    # the folders, the VM's stop (nothing left to start) and the host folder
    assert "undid 3 step(s); everything is as before" in proc.stderr
    assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
    assert vbox_bed.model.read()["machines"] == []
    assert not src.exists()  # the host folder it made is gone again
    assert guest.fstab() == fstab and "/mnt/gone" not in guest.mounts()
    assert vmshare.shares() == []  # no record of a share that cannot exist


def test_doctor_says_which_adapter_auto_chose_and_why(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare
):
    """With the test bed's vboxapi importable, auto takes the SDK; doctor says so."""
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, "auto")
    spec = vbox_bed.root / "vm.toml"  # doctor takes a VM's settings from a spec file
    spec.write_text(vbox_table(vm.vm, "auto"))
    result = vmshare.json("doctor", "-f", str(spec), vm.vm)
    checks = {c["name"]: c for c in result["data"]}
    assert checks["virtualbox adapter"]["status"] == "ok"
    assert checks["virtualbox adapter"]["detail"] == (
        "sdk: auto: pyvbox and VirtualBox's vboxapi are importable"
    )
    assert checks["guest additions"]["detail"] == "7.0.14: vboxsf shares"
    assert checks[f"virtualbox vm {vm.vm}"]["detail"].endswith("running")
    src = str(Path(__file__).resolve().parents[2] / "src")
    without = vmshare("doctor", "-f", str(spec), vm.vm, "--json", env={"PYTHONPATH": src})
    without = json.loads(without.stdout)
    rows = {c["name"]: c for c in without["data"]}
    assert rows["virtualbox adapter"]["detail"] == (
        "vboxmanage: auto: VirtualBox's vboxapi is not importable, VBoxManage is on PATH"
    )


def test_a_stopped_vm_gets_the_permanent_folder_and_starts_with_it(
    guest: Guest, vbox_bed: VboxBed, servers: FileServers, vmshare: Vmshare, open_tmp
):
    vm = vbox_vm(vbox_bed, servers, vmshare, guest.name, "sdk", running=False)
    src = make_tree(open_tmp / "cold")
    refused = vmshare("add", str(src), f"{vm.vm}:/mnt/cold")
    assert refused.returncode == 2 and "--restart" in refused.stderr, refused.stderr
    shown = vmshare.json("add", str(src), f"{vm.vm}:/mnt/cold", "--restart", "--dry-run")
    (attach,) = [s for s in shown["data"]["plan"]["steps"] if s["action"] == "attach_share"]
    assert "LockType.write" in attach["script"]  # the VM is off: the write lock
    result = vmshare.json("add", str(src), f"{vm.vm}:/mnt/cold", "--restart", "--yes")
    assert result["ok"], result
    (attach,) = [s for s in result["data"]["plan"]["steps"] if s["action"] == "attach_share"]
    assert attach["args"]["scopes"] == ["persistent"]
    assert "(permanent folder)" in attach["summary"]
    machine = vbox_bed.model.machine(vm.vm)
    assert machine["state"] == "running" and machine["transient"] == []
    assert [f["name"] for f in machine["folders"]] == [mount_tag(f"{vm.vm}:/mnt/cold")]
    assert guest.read("/mnt/cold/hello.txt") == b"hello from the host\n"
    vmshare("remove", f"{vm.vm}:/mnt/cold", check=True)
    assert vbox_bed.model.machine(vm.vm)["folders"] == []
