"""Hypervisor command lines: VBoxManage (backends/virtualbox/vboxmanage.py) and vmrun
(backends/vmware_desktop/vmrun.py). Checked without shlex, on the argv list itself: each value
is exactly one element at its place, and nothing that starts with '-' stands where the program
reads options (VBoxManage parses the VM argument among its options; vmrun reads options before
its command only). Or the value is refused with a UsageError."""

from __future__ import annotations

import shlex

from hypothesis import example, given
from hypothesis import strategies as st

from tests.property import hostile
from vmshare.backends.virtualbox import vboxmanage
from vmshare.backends.virtualbox.adapter import Folder
from vmshare.backends.virtualbox.names import folder_name
from vmshare.backends.vmware_desktop.vmrun import HIDDEN, Login, Vmrun
from vmshare.errors import UsageError
from vmshare.secret_value import Secret
from vmshare.spec import GuestAccess

RENDERER_VBOX, RENDERER_VMRUN = "VBoxManage argv", "vmrun argv"
vm_name = st.one_of(hostile.text, st.sampled_from(["-h", "--name", "--readonly", "devvm"]))
tag = st.one_of(st.from_regex(r"vmshare-[0-9a-f]{8}", fullmatch=True), hostile.text)


@given(
    vm=vm_name,
    name=tag,
    path=hostile.path,
    point=hostile.text,
    flags=st.tuples(*[st.booleans()] * 3),
)
@example(vm="--readonly", name="vmshare-0011", path="/srv/x", point="", flags=(True, False, False))
@example(vm="devvm", name="--hostpath", path="/srv/x", point="", flags=(True, False, False))
def test_vboxmanage_sharedfolder_argv(vm, name, path, point, flags):
    hostile.tally(RENDERER_VBOX)
    writable, transient, automount = flags
    try:
        folder = Folder(folder_name(name), path, writable, automount, point, transient)
        add = vboxmanage.add_argv(vm, folder)
        remove = vboxmanage.remove_argv(vm, folder.name, transient=transient)
        power = vboxmanage.VBoxManageAdapter().describe_power(vm, "restart", quote=str)
    except UsageError:
        assert not vm or vm.startswith("-") or folder_name_bad(name)
        return
    assert not vm.startswith("-") and not name.startswith("-")
    expected = ["VBoxManage", "sharedfolder", "add", vm, "--name", name, "--hostpath", path]
    expected += [] if writable else ["--readonly"]
    expected += ["--transient"] if transient else []
    if automount:
        expected += ["--automount", *(["--auto-mount-point", point] if point else [])]
    assert add == expected
    assert remove == ["VBoxManage", "sharedfolder", "remove", vm, "--name", name] + (
        ["--transient"] if transient else []
    )
    assert power[0] == f"VBoxManage controlvm {vm} acpipowerbutton"


def folder_name_bad(name: str) -> bool:
    try:
        folder_name(name)
    except UsageError:
        return True
    return False


@given(vm=vm_name, user=hostile.text, argv=st.lists(hostile.text, min_size=1, max_size=4))
def test_vboxmanage_guest_run_argv(vm, user, argv):
    hostile.tally(RENDERER_VBOX)
    try:
        GuestAccess(login_user=user)
    except ValueError:
        return  # refused up front by the VM's settings
    try:
        full = vboxmanage.run_argv(vm, user, "/tmp/pw", argv, b"in\0put", 10)
    except UsageError:
        assert not vm or vm.startswith("-")
        return
    assert full[:4] == ["VBoxManage", "guestcontrol", vm, "run"]
    end = full.index("--")
    options = full[4:end]
    assert options[options.index("--username") + 1] == user
    assert options[options.index("--passwordfile") + 1] == "/tmp/pw"
    assert full[end + 1 : end + 4] == ["sh", "-c", vboxmanage.RUN_SCRIPT]
    assert full[-len(argv) :] == argv  # the program's own argv, after "--", as it was


@given(
    vm=vm_name,
    key=st.sampled_from(["VBoxInternal2/SharedFoldersEnableSymlinksCreate/t"]),
    value=st.sampled_from(["1", ""]),
)
def test_vboxmanage_extradata_argv(vm, key, value):
    hostile.tally(RENDERER_VBOX)
    try:
        argv = vboxmanage.extradata_argv(vm, key, value)
    except UsageError:
        assert not vm or vm.startswith("-")
        return
    assert argv == ["VBoxManage", "setextradata", vm, key, *([value] if value else [])]


@given(
    vmx=hostile.path,
    user=hostile.text,
    password=hostile.text,
    name=tag,
    source=hostile.path,
)
@example(vmx="/vms/-T.vmx", user="-gp", password="-T", name="--x", source="/srv/x y")
def test_vmrun_argv(vmx, user, password, name, source):
    hostile.tally(RENDERER_VMRUN)
    vmrun = Vmrun("/usr/bin/vmrun", "ws", vmx)
    login = Login(user, Secret(password))
    argv = vmrun.argv("addSharedFolder", name, source, login=login)
    # options first, each with its value, then the command: vmrun takes no option after it
    assert argv == [
        "/usr/bin/vmrun", "-T", "ws", "-gu", user, "-gp", password,
        "addSharedFolder", vmx, name, source,
    ]  # fmt: skip
    assert vmrun.argv("list") == ["/usr/bin/vmrun", "-T", "ws", "list"]
    # a plan shows it as a shell line, with the password hidden
    shown = shlex.split(vmrun.shown("addSharedFolder", name, source, login_user=user))
    assert shown == [
        "vmrun",
        "-T",
        "ws",
        "-gu",
        user,
        "-gp",
        HIDDEN,
        "addSharedFolder",
        vmx,
        name,
        source,
    ]
