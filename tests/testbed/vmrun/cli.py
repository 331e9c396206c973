"""The vmrun stand-in's command line (see tests/testbed/vmrun/__init__.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vmshare.formats import vmx as vmxfmt

CONFIG = "vmrun-standin.json"
HOST_TYPES = ("ws", "fusion", "player")
# command -> (needs a guest login, minimum and maximum parameter count after the .vmx)
COMMANDS: dict[str, tuple[bool, int, int]] = {
    "start": (False, 0, 1),
    "stop": (False, 0, 1),
    "checkToolsState": (False, 0, 0),
    "getGuestIPAddress": (False, 0, 1),
    "enableSharedFolders": (False, 0, 1),
    "disableSharedFolders": (False, 0, 1),
    "addSharedFolder": (False, 2, 2),
    "removeSharedFolder": (False, 1, 1),
    "setSharedFolderState": (False, 3, 3),
    "runProgramInGuest": (True, 1, 10_000),
    "copyFileFromHostToGuest": (True, 2, 2),
    "copyFileFromGuestToHost": (True, 2, 2),
}
HGFS_OFF = "isolation.tools.hgfs.disable"
# a folder's virtiofs tag: what the guest's vmhgfs-fuse stand-in mounts for ".host:/NAME"
TAG_PREFIX = ".host:/"
TAG_MAX = 36  # bytes: virtio-fs tags


class VmrunError(Exception):
    """Printed as ``Error: <message>``."""

    def __init__(self, message: str, status: int = 255) -> None:
        super().__init__(message)
        self.status = status


# "the hypervisor never answers": while this file (next to the program) exists, a command whose
# name starts with its text (every command when it is empty) waits for VMware, which never answers
# (a modal dialog in Workstation): the caller's deadline ends it
FREEZE = "vmrun-freeze"


def main(argv: Sequence[str]) -> int:
    config = json.loads(Path(argv[0]).with_name(CONFIG).read_text())
    command = next((a for i, a in enumerate(argv[1:]) if _is_command(argv[1:], i)), "")
    while _frozen(Path(argv[0]).with_name(FREEZE), command):
        time.sleep(0.2)
    try:
        return run(list(argv[1:]), config)
    except VmrunError as exc:
        print(f"Error: {exc}")
        return exc.status


def _is_command(args: Sequence[str], index: int) -> bool:
    """Whether ``args[index]`` is vmrun's command: the first word that is no flag's value."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2
    return index == i


def _frozen(switch: Path, command: str) -> bool:
    try:
        return command.startswith(switch.read_text())
    except FileNotFoundError:
        return False


def run(args: list[str], config: dict[str, Any]) -> int:
    login: dict[str, str] = {}
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag not in ("-T", "-gu", "-gp") or not args:
            raise VmrunError(f"Unrecognized or incomplete flag: {flag}")
        value = args.pop(0)
        if flag == "-T":
            if value not in HOST_TYPES:
                raise VmrunError(f"Unknown host type: {value}")
        else:
            login[flag] = value
    if not args:
        raise VmrunError("No command given")
    command = args.pop(0)
    if command == "list":
        if args:
            raise VmrunError("Invalid argument: list takes no parameters")
        running = [vmx for vmx in config["vms"] if _vm(config, vmx).running()]
        print(f"Total running VMs: {len(running)}")
        for vmx in running:
            print(vmx)
        return 0
    if command not in COMMANDS:
        raise VmrunError(f"Unrecognized command: {command}")
    needs_login, least, most = COMMANDS[command]
    if not args:
        raise VmrunError(f"Invalid argument: {command} needs the path of a .vmx file")
    path = args.pop(0)
    if not (least <= len(args) <= most):
        raise VmrunError(f"Invalid number of arguments for {command}")
    if not Path(path).is_file():
        raise VmrunError(f"Cannot open VM: {path}, The virtual machine cannot be found")
    vm = _vm(config, str(Path(path).resolve()))
    if needs_login:
        expected = config["login"]
        if login.get("-gu") != expected["user"] or login.get("-gp") != expected["password"]:
            raise VmrunError("Invalid user name or password for the guest OS")
    handler: Callable[..., int] = getattr(vm, command)
    return handler(*args)


def _vm(config: dict[str, Any], vmx: str) -> StandInVm:
    entry = config["vms"].get(vmx)
    if entry is None:
        raise VmrunError(f"Cannot open VM: {vmx}, The virtual machine cannot be found")
    return StandInVm(Path(vmx), entry["domain"], entry["uri"])


class StandInVm:
    def __init__(self, vmx: Path, domain: str, uri: str) -> None:
        self.vmx, self.domain_name, self.uri = vmx, domain, uri
        self._dom: Any = None

    # --------------------------------------------------------------- plumbing

    @property
    def dom(self) -> Any:
        if self._dom is None:
            import libvirt

            from tests.testbed.libvirtd import quiet_libvirt

            quiet_libvirt()
            self._dom = libvirt.open(self.uri).lookupByName(self.domain_name)
        return self._dom

    @property
    def lock(self) -> Path:
        return vmxfmt.lock_folder(self.vmx)

    def running(self) -> bool:
        """VMware holds the VM (its lock folder) and it is powered on (the domain runs)."""
        import libvirt

        if not self.lock.is_dir():
            return False
        try:
            return bool(self.dom.isActive())
        except libvirt.libvirtError:  # no such domain, or no libvirtd: nothing runs
            return False

    def _need_running(self) -> None:
        if not self.running():
            raise VmrunError(f"The virtual machine is not powered on: {self.vmx}")

    def _read(self) -> vmxfmt.VmxFile:
        return vmxfmt.parse(self.vmx.read_bytes())

    def _edit(self, change: Callable[[vmxfmt.VmxFile], object]) -> None:
        # VMware itself writes the .vmx of the VM it holds: no lock check for it
        vmxfmt.edit_vmx(self.vmx, change, lock_check=False)

    def _folders(self) -> dict[str, vmxfmt.SharedFolder]:
        return {
            f.guest_name: f
            for f in vmxfmt.shared_folders(self._read()).values()
            if f.guest_name and f.present
        }

    def _hgfs_on(self) -> bool:
        value = self._read().get(HGFS_OFF)
        return value is None or value.strip().upper() != "TRUE"

    def _exec(self, argv: list[str], stdin: bytes | None = None, timeout: float = 600):  # type: ignore[no-untyped-def]
        from tests.testbed.domain import agent_exec

        return agent_exec(self.dom, argv, stdin=stdin, timeout=timeout)

    # ------------------------------------------- virtiofs devices for folders

    def _live_tags(self, flags: int = 0) -> dict[str, ET.Element]:
        """Folder name -> the domain's virtiofs device for it (its tag is ".host:/NAME")."""
        root = ET.fromstring(self.dom.XMLDesc(flags))
        found = {}
        for fs in root.findall("./devices/filesystem"):
            tag = fs.find("target").get("dir", "")  # type: ignore[union-attr]
            if tag.startswith(TAG_PREFIX):
                found[tag.removeprefix(TAG_PREFIX)] = fs
        return found

    def _plug(self, name: str, host_path: str, flags: int | None = None) -> None:
        import libvirt

        from tests.testbed.domain import filesystem_element

        tag = TAG_PREFIX + name
        if len(tag.encode()) > TAG_MAX:
            raise VmrunError(f"shared folder name {name} is too long for this stand-in")
        if name in self._live_tags():
            return
        element = filesystem_element(Path(host_path), tag)
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE if flags is None else flags
        self.dom.attachDeviceFlags(ET.tostring(element, encoding="unicode"), flags)

    def _unplug(self, name: str) -> None:
        import libvirt

        element = self._live_tags().get(name)
        if element is None:
            return
        xml = ET.tostring(element, encoding="unicode")
        self.dom.detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        deadline = time.monotonic() + 30
        while name in self._live_tags():  # the guest lets go of the device
            if time.monotonic() > deadline:
                raise VmrunError(f"the guest did not release shared folder {name}")
            time.sleep(0.2)

    def _sync_devices(self) -> None:
        """The running VM's virtiofs devices: one per enabled folder while shared folders are on."""
        wanted = {}
        if self._hgfs_on():
            # VMware serves no folder whose host path is gone
            wanted = {
                n: f.host_path
                for n, f in self._folders().items()
                if f.enabled and f.host_path and Path(f.host_path).is_dir()
            }
        live = self._live_tags()
        plugged = self._plugged()
        for name in list(live):
            if name not in plugged:
                continue  # a device the libvirt side of the test bed made: not a folder
            source = live[name].find("source")
            if name not in wanted or (source is not None and source.get("dir") != wanted[name]):
                self._unplug(name)
                plugged.discard(name)
        for name, host_path in wanted.items():
            self._plug(name, host_path)
            plugged.add(name)
        self._plugged_file.write_text(json.dumps(sorted(plugged)))

    @property
    def _plugged_file(self) -> Path:
        return self.lock / "standin-hgfs-devices.json"

    def _plugged(self) -> set[str]:
        """The devices this stand-in plugged into the running VM (kept in VMware's lock folder,
        which goes when the VM stops, as the devices do)."""
        try:
            return set(json.loads(self._plugged_file.read_text()))
        except FileNotFoundError:
            return set()

    # ---------------------------------------------------------------- power

    def start(self, mode: str = "gui") -> int:
        import libvirt

        from tests.testbed.domain import wait_for_agent

        if mode not in ("gui", "nogui"):
            raise VmrunError(f"Invalid argument: {mode}")
        if self.running():
            return 0
        if not self.dom.isActive():
            # folders are there from power-on: in the config for the boot, then out of it again
            # (the libvirt domain's own config stays as the test bed made it)
            config = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            folders = {
                n: f.host_path
                for n, f in self._folders().items()
                if f.enabled and self._hgfs_on() and f.host_path and Path(f.host_path).is_dir()
            }
            for name, host_path in folders.items():
                self._plug(name, host_path, config)
            try:
                self.dom.create()
            finally:
                inactive = self._live_tags(libvirt.VIR_DOMAIN_XML_INACTIVE)
                for name in folders:
                    if name in inactive:
                        xml = ET.tostring(inactive[name], encoding="unicode")
                        self.dom.detachDeviceFlags(xml, config)
            wait_for_agent(self.dom, 180)
            self.lock.mkdir(exist_ok=True)
            self._plugged_file.write_text(json.dumps(sorted(folders)))
        self.lock.mkdir(exist_ok=True)
        self._sync_devices()
        return 0

    def stop(self, mode: str = "soft") -> int:
        import libvirt

        from tests.testbed.domain import agent_command

        if mode not in ("soft", "hard"):
            raise VmrunError(f"Invalid argument: {mode}")
        self._need_running()
        if mode == "soft":
            # the agent may go before it answers
            with contextlib.suppress(libvirt.libvirtError):
                agent_command(self.dom, "guest-shutdown", {"mode": "powerdown"})
            deadline = time.monotonic() + 120
            while self.dom.isActive() and time.monotonic() < deadline:
                time.sleep(0.5)
        if self.dom.isActive():
            self.dom.destroy()
        shutil.rmtree(self.lock)
        return 0

    # ----------------------------------------------------------------- tools

    def checkToolsState(self) -> int:  # vmrun's command names
        if not self.running():
            print("unknown")
            return 0
        from tests.testbed.domain import agent_command

        try:
            agent_command(self.dom, "guest-ping", timeout=5)
            print("running")
        except Exception:
            print("installed")
        return 0

    def getGuestIPAddress(self, wait: str | None = None) -> int:
        if wait not in (None, "-wait"):
            raise VmrunError(f"Invalid argument: {wait}")
        self._need_running()
        from tests.testbed.domain import agent_command

        for nic in agent_command(self.dom, "guest-network-get-interfaces"):
            for address in nic.get("ip-addresses", []):
                ip = address.get("ip-address", "")
                if address.get("ip-address-type") == "ipv4" and not ip.startswith("127."):
                    print(ip)
                    return 0
        raise VmrunError("Unable to get the IP address")

    # -------------------------------------------------------- shared folders

    def enableSharedFolders(self, runtime: str | None = None) -> int:
        if runtime not in (None, "runtime"):
            raise VmrunError(f"Invalid argument: {runtime}", 0)
        self._edit(lambda v: v.set(HGFS_OFF, "FALSE"))
        if self.running():
            self._sync_devices()
        return 0

    def disableSharedFolders(self, runtime: str | None = None) -> int:
        if runtime not in (None, "runtime"):
            raise VmrunError(f"Invalid argument: {runtime}", 0)
        self._edit(lambda v: v.set(HGFS_OFF, "TRUE"))
        if self.running():
            self._sync_devices()
        return 0

    def addSharedFolder(self, name: str, host_path: str) -> int:
        if not self.running():
            raise VmrunError(f"The virtual machine is not powered on: {self.vmx}", 0)
        if name in self._folders():
            raise VmrunError("Cannot add a shared folder with the same name", 0)
        if not Path(host_path).is_dir():
            raise VmrunError(f"The shared folder path is not a directory: {host_path}", 0)

        def add(v: vmxfmt.VmxFile) -> None:
            used = {f.index for f in vmxfmt.shared_folders(v).values()}
            index = next(i for i in range(len(used) + 1) if i not in used)
            p = f"sharedFolder{index}."
            for key, value in (
                ("present", "TRUE"), ("enabled", "TRUE"), ("readAccess", "TRUE"),
                ("writeAccess", "TRUE"), ("hostPath", host_path), ("guestName", name),
                ("expiration", "never"),
            ):  # fmt: skip
                v.set(p + key, value)
            if vmxfmt.max_num(v) < index + 1:
                v.set("sharedFolder.maxNum", str(index + 1))

        self._edit(add)
        self._sync_devices()
        return 0

    def removeSharedFolder(self, name: str) -> int:
        if not self.running():
            raise VmrunError(f"The virtual machine is not powered on: {self.vmx}", 0)
        folder = self._folders().get(name)
        if folder is None:
            raise VmrunError(f"The shared folder {name} does not exist", 0)

        def remove(v: vmxfmt.VmxFile) -> None:
            for key in v.keys(f"sharedFolder{folder.index}."):
                v.remove(key)

        self._unplug(name)
        self._edit(remove)
        return 0

    def setSharedFolderState(self, name: str, host_path: str, mode: str) -> int:
        if mode not in ("writable", "readonly"):
            raise VmrunError(f"Invalid argument: {mode}", 0)
        if not self.running():
            raise VmrunError(f"The virtual machine is not powered on: {self.vmx}", 0)
        folder = self._folders().get(name)
        if folder is None:
            raise VmrunError(f"The shared folder {name} does not exist", 0)
        if not Path(host_path).is_dir():
            raise VmrunError(f"The shared folder path is not a directory: {host_path}", 0)
        p = f"sharedFolder{folder.index}."

        def change(v: vmxfmt.VmxFile) -> None:
            v.set(p + "hostPath", host_path)
            v.set(p + "writeAccess", "TRUE" if mode == "writable" else "FALSE")

        self._edit(change)
        self._sync_devices()
        return 0

    # ----------------------------------------------------------- guest work

    def runProgramInGuest(self, *args: str) -> int:
        self._need_running()
        options = list(args)
        while options and options[0] in ("-noWait", "-activeWindow", "-interactive"):
            options.pop(0)
        if not options:
            raise VmrunError("Invalid number of arguments for runProgramInGuest")
        program, rest = options[0], options[1:]
        if not program.startswith("/"):
            raise VmrunError("A file was not found: the program path must be absolute")
        # VMware Tools hand a Linux guest the program and its arguments as one command line
        line = " ".join([program, *rest])
        code, _, _ = self._exec(["/bin/sh", "-c", line])
        if code != 0:
            print(f"Guest program exited with non-zero exit code: {code}")
            return 255
        return 0

    def copyFileFromHostToGuest(self, host: str, guest: str) -> int:
        self._need_running()
        try:
            data = Path(host).read_bytes()
        except OSError:
            raise VmrunError("A file was not found") from None
        code, _, _ = self._exec(["sh", "-c", 'cat > "$1"', "sh", guest], stdin=data)
        if code != 0:
            raise VmrunError("Cannot create file in guest")
        return 0

    def copyFileFromGuestToHost(self, guest: str, host: str) -> int:
        self._need_running()
        code, out, _ = self._exec(["cat", guest])
        if code != 0:
            raise VmrunError("A file was not found")
        Path(host).write_bytes(out)
        os.utime(host)
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
