"""VMware Workstation / Fusion through vmrun and the .vmx file: HGFS shared folders.

A running VM gets its folders through vmrun (``enableSharedFolders``, ``addSharedFolder``,
``setSharedFolderState``, ``removeSharedFolder``), which VMware also writes into the VM's .vmx;
a stopped VM gets them written into its .vmx (``sharedFolderN.*``), refused while VMware holds the
VM's lock folder. vmshare adds and removes only folders it named (``vmshare-...``): never one
the user made. The guest channel is ssh when configured, else vmrun's guest commands.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any

from vmshare.backends.base import Backend, Diagnosis
from vmshare.backends.vmware_desktop import vmxfacts
from vmshare.backends.vmware_desktop.channel import VmrunChannel
from vmshare.backends.vmware_desktop.inventory import find_vmx
from vmshare.backends.vmware_desktop.settings import VmwareDesktopVm
from vmshare.backends.vmware_desktop.vmrun import (
    POWER,
    Login,
    Vmrun,
    find_vmrun,
    product_of,
)
from vmshare.errors import GuestError, HypervisorError, NotFoundError, VmshareError
from vmshare.facts import Capabilities, DeviceCapability, Prerequisite, Scope, VmFacts
from vmshare.formats import fstab
from vmshare.formats import vmx as vmxfmt
from vmshare.guest.channel import GuestChannel
from vmshare.guest.linux import live_mount_options, mount_argv
from vmshare.guest.ssh import SshChannel
from vmshare.plan.step import Step
from vmshare.protocols.hgfs import HGFS
from vmshare.secrets import resolve_secret
from vmshare.spec import VmSpec

SHARED_FOLDERS = "shared-folders"  # the prerequisite: the VM's shared folders are on
# its undo at removal: off again, as they were, once no vmshare folder remains
SHARED_FOLDERS_OFF = "shared-folders-off"
TOOLS_TIMEOUT = 300.0  # s: for VMware Tools to run after the VM starts
IP_TIMEOUT = 20.0  # s: getGuestIPAddress -wait
CLEARTEXT_NOTE = (
    "vmrun takes the guest password on its command line (-gu/-gp): while each guest command "
    "runs, other users of this host can see it in the process list (vmshare never logs or shows "
    'it). Prefer ssh: set [vm.{vm}.guest] ssh_host (and channel = "ssh").'
)
GUEST_HINT = (
    "make sure VMware Tools (open-vm-tools) run in the guest and [vm.{vm}.guest] login_user and "
    'login_password are right, or set [vm.{vm}.guest] channel = "ssh" and ssh_host'
)


class VmwareDesktopBackend(Backend):
    name = "vmware-desktop"

    def __init__(self, settings: VmwareDesktopVm) -> None:
        super().__init__(settings)
        self.vm_settings = settings
        self._path: Path | None = None
        self._vmrun: Vmrun | None = None
        self._login: Login | None = None

    @property
    def path(self) -> Path:
        """The VM's .vmx: the setting, or the inventory's file for the name it gives."""
        if self._path is None:
            vmx = self.vm_settings.vmx
            self._path = Path(vmx) if vmx.lower().endswith(".vmx") else find_vmx(vmx)
        return self._path

    @property
    def vmrun(self) -> Vmrun:
        if self._vmrun is None:
            settings = self.vm_settings
            program = find_vmrun(settings.vmrun)
            self._vmrun = Vmrun(program, product_of(settings.product), str(self.path))
        return self._vmrun

    # -------------------------------------------------------------------- facts

    def _read(self) -> vmxfmt.VmxFile | None:
        return vmxfacts.read(self.path)

    def running(self) -> bool:
        """Whether vmrun lists this VM's .vmx among the running VMs."""
        _, out = self.vmrun.run("list")
        for line in out.splitlines()[1:]:
            line = line.strip()
            if line and _same_file(line, self.path):
                return True
        return False

    def _uses_ssh(self) -> bool:
        access = self.vm_settings.guest
        return access.channel == "ssh" or (access.channel == "auto" and bool(access.ssh_host))

    def inspect(self, vm: str) -> VmFacts:
        facts = VmFacts(
            name=vm,
            backend=self.name,
            connection=self.connection,
            find_hint=f"check [vm.{vm}] vmx: the path of the VM's .vmx file",
            guest_hint=GUEST_HINT.format(vm=vm),
        )
        try:
            parsed = self._read() if vm == self.vm_settings.name else None
        except NotFoundError as exc:  # a name the inventory does not list: no such VM
            return facts.model_copy(update={"find_hint": f"{exc.message}; {exc.hint}"})
        if parsed is None:
            return facts
        running = self.running()
        folders = vmxfacts.devices(parsed)
        enabled = vmxfacts.hgfs_enabled(parsed)
        os_key = vmxfacts.guest_os(parsed)
        windows = os_key.startswith("win")
        missing = []
        if not enabled:
            where = "running VM" if running else "the .vmx of VM"
            missing.append(
                Prerequisite(
                    name=SHARED_FOLDERS,
                    summary=f"turn on shared folders in {where} {vm}",
                    reason="HGFS folders reach the guest only while the VM's shared folders are on",
                    undo=SHARED_FOLDERS_OFF,
                    undo_summary=f"turn shared folders in VM {vm} off again, as they were, "
                    "if no vmshare folder remains",
                )
            )
        # the value an attach may raise, so that the last detach puts it back ("" = no key)
        max_num = {"max_num": parsed.get(vmxfmt.MAX_NUM) or ""}
        hgfs = DeviceCapability(
            protocol="hgfs",
            semantics=HGFS.semantics,
            hotplug=True,
            unplug=True,
            readonly_enforced=True,
            missing=missing,
            detach_args=max_num,
        )
        notes = [] if self._uses_ssh() else [CLEARTEXT_NOTE.format(vm=vm)]
        tools, addresses = (self._tools(), self._addresses()) if running else (None, [])
        return facts.model_copy(
            update={
                "exists": True,
                "uuid": parsed.get("uuid.bios"),
                "running": running,
                "persistent_devices": folders,
                "running_devices": folders if running and enabled else {},
                "addresses": addresses,
                "address_reason": "VMware Tools' address (vmrun getGuestIPAddress)"
                if addresses
                else None,
                "guest_tools": tools,
                "capabilities": Capabilities(
                    devices=[] if windows else [hgfs],
                    network=["smb"] if windows else ["nfs", "smb"],
                    guest_os="windows" if windows else "linux",
                ),
                "warnings": notes,
            }
        )

    def _tools(self) -> str:
        _, out = self.vmrun.run("checkToolsState", check=False)
        return out.strip().splitlines()[-1] if out.strip() else "unknown"

    def _addresses(self) -> list[str]:
        try:
            _, out = self.vmrun.run("getGuestIPAddress", "-wait", timeout=IP_TIMEOUT)
        except HypervisorError:
            return []
        words = out.split()
        return [words[-1]] if words and words[-1].count(".") == 3 else []

    def diagnose(self, vm: str) -> list[Diagnosis]:
        """vmrun, the .vmx, the VM's power state and VMware Tools; a failure ends the list."""
        vmrun = self._vmrun
        program = vmrun.program if vmrun is not None else find_vmrun(self.vm_settings.vmrun)
        if program is None:
            return [
                Diagnosis(
                    "vmrun",
                    "fail",
                    "vmrun missing: not on PATH nor where Workstation/Fusion install it",
                    "install VMware Workstation or Fusion, or set [vm.NAME] vmrun to its path",
                )
            ]
        product = product_of(self.vm_settings.product)
        rows = [Diagnosis("vmrun", "ok", f"{program} (-T {product})")]
        try:
            parsed = self._read()
        except VmshareError as exc:
            return [*rows, Diagnosis("vmx", "fail", exc.message, exc.hint)]
        if parsed is None:
            return [
                *rows,
                Diagnosis(
                    "vmx",
                    "fail",
                    f"no .vmx file at {self.path}",
                    f"check [vm.{vm}] vmx: the path of the VM's .vmx file",
                ),
            ]
        state = "shared folders on" if vmxfacts.hgfs_enabled(parsed) else "shared folders off"
        rows.append(Diagnosis("vmx", "ok", f"{self.path} ({state})"))
        try:
            running = self.running()
        except VmshareError as exc:
            return [*rows, Diagnosis("vmrun list", "fail", exc.message, exc.hint)]
        if not running:
            return [*rows, Diagnosis("vmware tools", "info", "the VM is not running")]
        tools = self._tools()
        if tools.lower() == "running":
            rows.append(Diagnosis("vmware tools", "ok", tools))
        else:
            rows.append(Diagnosis("vmware tools", "warn", tools, GUEST_HINT.format(vm=vm)))
        if not self._uses_ssh():
            rows.append(
                Diagnosis("guest password", "warn", CLEARTEXT_NOTE.format(vm=vm).split(":")[0])
            )
        return rows

    # ------------------------------------------------------------- guest channel

    def guest_channel(self, vm: VmSpec) -> GuestChannel:
        if self._uses_ssh():
            return SshChannel(vm.guest)
        return VmrunChannel(self.vmrun, self._guest_login, vm.name)

    def _guest_login(self) -> Login:
        access, name = self.vm_settings.guest, self.vm_settings.name
        if self._login is None:
            if access.login_password is None:
                raise GuestError(
                    f"vmrun guest commands in VM {name!r} need a guest login",
                    hint=f'set [vm.{name}.guest] login_user and login_password_env = "NAME" '
                    '(or channel = "ssh" and ssh_host)',
                )
            what = f"the guest password of {access.login_user} in VM {name!r}"
            self._login = Login(access.login_user, resolve_secret(access.login_password, what))
        return self._login

    # -------------------------------------------------------------------- verbs

    def attach_share(
        self,
        *,
        vm: str,
        tag: str,
        source: str,
        protocol: str,
        readonly: bool,
        scopes: list[Scope],
    ) -> str | None:
        self._check(vm)
        if protocol != "hgfs":
            raise HypervisorError(
                f"Workstation/Fusion has no {protocol} device", hint="use --protocol hgfs"
            )
        if not self.running():
            self._edit(lambda v: vmxfmt.with_shared_folder(v, tag, source, readonly))
            return None
        current = self._devices().get(tag)
        if current is None or current.source != source:
            if current is not None:
                self.vmrun.run("removeSharedFolder", tag)
            self.vmrun.run("addSharedFolder", tag, source)
        if current is None or current.source != source or current.readonly != readonly:
            self.vmrun.run("setSharedFolderState", tag, source, _mode(readonly))
        return None

    def detach_share(
        self, *, vm: str, tag: str, scopes: list[Scope], max_num: str | None = None
    ) -> str | None:
        """Take the folder away; on a stopped VM, the last vmshare folder's detach also puts
        ``sharedFolder.maxNum`` back to ``max_num``, its value before the attach (VMware owns the
        .vmx of a running VM)."""
        self._check(vm)
        if not self.running():
            self._edit(lambda v: _without_folder(v, tag, max_num))
        elif tag in self._devices():
            self.vmrun.run("removeSharedFolder", tag)
        return None

    def prepare(self, *, vm: str, prerequisite: str) -> str | None:
        self._check(vm)
        if prerequisite not in (SHARED_FOLDERS, SHARED_FOLDERS_OFF):
            raise HypervisorError(f"Workstation/Fusion has no prerequisite {prerequisite!r}")
        if prerequisite == SHARED_FOLDERS_OFF and self._devices():
            return f"shared folders stay on in VM {vm!r}: other vmshare folders use them"
        running = self.running()
        if prerequisite == SHARED_FOLDERS_OFF:
            if running:
                self.vmrun.run("disableSharedFolders")
            else:
                self._edit(lambda v: v.set(vmxfacts.HGFS_OFF, "TRUE"))
        elif running:
            self.vmrun.run("enableSharedFolders")
        else:
            self._edit(lambda v: v.set(vmxfacts.HGFS_OFF, "FALSE"))
        return None

    def start(self, *, vm: str) -> str | None:
        self._check(vm)
        if not self.running():
            self.vmrun.run("start", "nogui", timeout=POWER)
        self._wait_guest(vm)
        return None

    def restart(self, *, vm: str) -> str | None:
        self._check(vm)
        if not self.running():
            return f"VM {vm!r} is off; the change applies when it next starts"
        forced = False
        try:
            self.vmrun.run("stop", "soft", timeout=POWER)
        except HypervisorError:
            forced = True
            self.vmrun.run("stop", "hard", timeout=POWER)
        self.start(vm=vm)
        return f"VM {vm!r} was powered off (no clean guest shutdown)" if forced else None

    def _check(self, vm: str) -> None:
        """This backend drives the one VM its settings name (its .vmx)."""
        if vm != self.vm_settings.name:
            raise NotFoundError(
                f"VM {vm!r} is not the VM of {self.path}",
                hint=f"describe VM {vm!r} in host.toml with its own [vm.{vm}] vmx",
            )

    def _devices(self) -> dict[str, Any]:
        parsed = self._read()
        if parsed is None:
            raise NotFoundError(f"no .vmx file at {self.path}", hint="check [vm.NAME] vmx")
        return vmxfacts.devices(parsed)

    def _edit(self, change: Any) -> None:
        vmxfmt.edit_vmx(self.path, change)

    def _wait_guest(self, vm: str) -> None:
        """Until VMware Tools run and the guest channel answers, within TOOLS_TIMEOUT."""
        deadline = time.monotonic() + TOOLS_TIMEOUT
        channel = self.guest_channel(self.vm_settings)
        while True:
            try:
                tools_up = self._uses_ssh() or self._tools().lower() == "running"
                if tools_up and channel.run(["true"], timeout=30).exit_code == 0:
                    return
            except VmshareError:
                pass
            if time.monotonic() > deadline:
                raise GuestError(
                    f"the guest of VM {vm!r} did not answer within {TOOLS_TIMEOUT:g} s of the "
                    "VM starting",
                    hint=GUEST_HINT.format(vm=vm),
                )
            time.sleep(2)

    # ------------------------------------------------------------------ the plan

    def explain(self, step: Step) -> list[str]:
        """The vmrun command lines or .vmx lines of a hypervisor step, and the guest's mount
        command and fstab line."""
        args = step.args
        try:
            if step.layer == "guest":
                return self._explain_guest(step)
            if step.action in ("attach_share", "detach_share", "prepare"):
                running = self.running()
                parsed = self._read()
                if not running and parsed is not None:
                    return vmxfacts.changed_lines(parsed, _vmx_change(step))
                if step.action == "attach_share":
                    tag, source = args["tag"], args["source"]
                    return [
                        self.vmrun.shown("addSharedFolder", tag, source),
                        self.vmrun.shown(
                            "setSharedFolderState", tag, source, _mode(args["readonly"])
                        ),
                    ]
                if step.action == "detach_share":
                    return [self.vmrun.shown("removeSharedFolder", args["tag"])]
                if args.get("prerequisite") == SHARED_FOLDERS_OFF:
                    return [self.vmrun.shown("disableSharedFolders")]
                return [self.vmrun.shown("enableSharedFolders")]
            if step.action == "start":
                return [self.vmrun.shown("start", "nogui")]
            if step.action == "restart":
                return [self.vmrun.shown("stop", "soft"), self.vmrun.shown("start", "nogui")]
        except VmshareError:
            return []
        return []

    def _explain_guest(self, step: Step) -> list[str]:
        args = step.args
        if step.action == "mount":
            options = live_mount_options(args["fstype"], args["options"])
            command = mount_argv(args["source"], args["target"], args["fstype"], options)
            lines = [f"guest: {shlex.join(command)}"]
            if not self._uses_ssh():
                user = self.vm_settings.guest.login_user
                lines.append(
                    "  through "
                    + self.vmrun.shown("runProgramInGuest", "/bin/sh", "...", login_user=user)
                )
            return lines
        if step.action == "fstab_add":
            entry = fstab.MountEntry(
                args["source"], args["target"], args["fstype"], tuple(args["options"])
            )
            return [f"/etc/fstab: {fstab.render_entry(entry)}"]
        return []


def _mode(readonly: bool) -> str:
    return "readonly" if readonly else "writable"


def _vmx_change(step: Step) -> Any:
    args = step.args
    if step.action == "attach_share":
        return lambda v: vmxfmt.with_shared_folder(v, args["tag"], args["source"], args["readonly"])
    if step.action == "detach_share":
        return lambda v: _without_folder(v, args["tag"], args.get("max_num"))
    if args.get("prerequisite") == SHARED_FOLDERS_OFF:
        return lambda v: v.set(vmxfacts.HGFS_OFF, "TRUE")
    return lambda v: v.set(vmxfacts.HGFS_OFF, "FALSE")


def _without_folder(vmx: vmxfmt.VmxFile, tag: str, max_num: str | None) -> None:
    """The folder out; once no vmshare folder remains, maxNum back to what it was (None: not
    recorded, by an older vmshare)."""
    vmxfmt.without_shared_folder(vmx, tag)
    if max_num is None or vmxfacts.devices(vmx):
        return
    now = vmxfmt.max_num(vmx)
    highest = max(vmxfmt.shared_folders(vmx), default=-1)
    before = int(max_num) if max_num.isdigit() else 0
    if now > before and highest < before:
        if max_num:
            vmx.set(vmxfmt.MAX_NUM, max_num)
        else:
            vmx.remove(vmxfmt.MAX_NUM)


def _same_file(listed: str, path: Path) -> bool:
    try:
        return os.path.samefile(listed, path)
    except OSError:
        return os.path.normcase(os.path.abspath(listed)) == os.path.normcase(os.path.abspath(path))


BACKEND = VmwareDesktopBackend
