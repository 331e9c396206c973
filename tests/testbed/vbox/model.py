"""The machine model behind the test bed's VirtualBox: one JSON file that the COM-level fake
(com.py, in the test process) and the VBoxManage stand-in (vboxmanage.py, one process per call)
both read and change, under an flock, with VirtualBox's own rules:

- a session locks a machine ``write`` only when no one holds it (a running VM's process holds
  it), ``shared`` only when it is locked already (the VM runs);
- a permanent folder is created on the locked session's machine and exists only once
  ``saveSettings`` writes it (unlocking without saving discards the change). The API allows it
  while the VM runs, on the session machine of a shared lock (``createSharedFolder`` and
  ``removeSharedFolder`` check ``MutableOrRunningStateDep`` in VirtualBox 7.0's MachineImpl.cpp):
  the COM fake does that. ``VBoxManage sharedfolder add/remove`` without ``--transient`` asks
  for the write lock instead, always (VBoxManageMisc.cpp), which the rule above refuses while
  the VM's process holds the machine: the stand-in changes permanent folders only of a VM that
  is off;
- a transient folder needs the VM running and a shared lock; it is gone when the VM stops;
- folder names may not be empty or hold spaces, tabs or newlines; the host path must be
  absolute; a name is unique among permanent and among transient folders (not across them:
  a transient folder overrides a permanent one of the same name);
- an unknown VM, folder or session is VBOX_E_OBJECT_NOT_FOUND.

Faults carry VirtualBox's result codes (``hresult``), which pyvbox maps to its VBoxError
classes and the stand-in prints as VBoxManage does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OBJECT_NOT_FOUND = 0x80BB0001
INVALID_VM_STATE = 0x80BB0002
FILE_ERROR = 0x80BB0004
INVALID_OBJECT_STATE = 0x80BB0007
OBJECT_IN_USE = 0x80BB000C
INVALID_ARG = 0x80070057
CODE_NAMES = {
    OBJECT_NOT_FOUND: "VBOX_E_OBJECT_NOT_FOUND",
    INVALID_VM_STATE: "VBOX_E_INVALID_VM_STATE",
    FILE_ERROR: "VBOX_E_FILE_ERROR",
    INVALID_OBJECT_STATE: "VBOX_E_INVALID_OBJECT_STATE",
    OBJECT_IN_USE: "VBOX_E_OBJECT_IN_USE",
    INVALID_ARG: "E_INVALIDARG",
}
VM_PROCESS = "vm-process"  # the session a running VM's own process holds
HOLDER = "someone-else"  # another client's session (the GUI, a second VBoxManage): fault tests
RUNNING = ("running", "paused")
ENV = "VMSHARE_VBOX_MODEL"


class Fault(Exception):
    """A COM error as pyvbox sees it: ``hresult`` (its code) and ``msg``."""

    def __init__(self, hresult: int, msg: str) -> None:
        super().__init__(msg)
        self.hresult, self.msg = hresult, msg


class Model:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def from_env(cls) -> Model:
        return cls(Path(os.environ[ENV]))

    # ---------------------------------------------------------------- storage

    @contextlib.contextmanager
    def change(self) -> Iterator[dict[str, Any]]:
        """The whole model, written back when the block ends without an error."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.path.read_text()) if self.path.exists() else {"machines": []}
            yield data
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1))
            tmp.rename(self.path)

    def read(self) -> dict[str, Any]:
        with self.change() as data:
            return json.loads(json.dumps(data))

    # ---------------------------------------------------------------- set-up

    def create(
        self,
        name: str,
        *,
        running: bool = False,
        guest_additions: str | None = "7.0.14",
        addresses: tuple[str, ...] = ("10.0.2.15",),
        nat: bool = True,
        domain: str | None = None,
        logins: dict[str, str] | None = None,
    ) -> str:
        """Register a VM; ``domain`` names the libvirt test domain that stands for it."""
        uuid = str(uuidlib.uuid4())
        with self.change() as data:
            data["machines"].append(
                {
                    "name": name,
                    "uuid": uuid,
                    "state": "poweroff",
                    "nic1": "nat" if nat else "bridged",
                    "sessions": [],
                    "folders": [],
                    "transient": [],
                    "extradata": {},
                    "ga": guest_additions,
                    "addresses": list(addresses),
                    # kept in the VM's settings once Guest Additions ran (as if they had)
                    "properties": (
                        {"/VirtualBox/GuestAdd/Version": guest_additions} if guest_additions else {}
                    ),
                    "domain": domain,
                    "logins": logins or {},
                }
            )
        if running:
            self.start(uuid)
        return uuid

    def unregister(self, ref: str) -> None:
        """The VM vanishes (deleted in the GUI, or by another tool)."""
        with self.change() as data:
            machine = find(data, ref)
            data["machines"].remove(machine)

    # ---------------------------------------------------------------- reading

    def machine(self, ref: str) -> dict[str, Any]:
        return find(self.read(), ref)

    # ---------------------------------------------------------------- sessions

    def lock(self, ref: str, session: str, kind: str) -> None:
        refused: Fault | None = None
        with self.change() as data:
            machine = find(data, ref)
            holders = machine["sessions"]
            if any(h["id"] == session for h in holders):
                raise Fault(INVALID_OBJECT_STATE, "The given session is busy")
            if kind == "write" and holders:
                # VirtualBox 7.0's MachineImpl.cpp, lockMachine (VBoxManage prints it too)
                refused = Fault(
                    INVALID_OBJECT_STATE,
                    f"The machine '{machine['name']}' is already locked for a session "
                    "(or being unlocked)",
                )
                self._refused(machine, "lockMachine")
            elif kind == "shared" and not holders:
                raise Fault(
                    INVALID_OBJECT_STATE,
                    f"The machine '{machine['name']}' is not locked by a session",
                )
            else:
                holders.append({"id": session, "kind": kind})
        if refused is not None:
            raise refused

    def hold(self, ref: str, session: str = HOLDER) -> None:
        """Another client locks the machine as ``lockMachine(LockType_Shared)`` does: a link to
        the session that holds it, or VirtualBox's exclusive write lock when none does (the GUI's
        settings dialog of a stopped VM). The fault tests' "lock held by someone else"."""
        kind = "shared" if self.machine(ref)["sessions"] else "write"
        self.lock(ref, session, kind)

    def release(self, ref: str, session: str = HOLDER) -> None:
        """The other client lets go (nothing to do when it holds no lock)."""
        with self.change() as data:
            machine = find(data, ref)
            machine["sessions"] = [h for h in machine["sessions"] if h["id"] != session]

    def refusals(self) -> list[dict[str, str]]:
        """Every lock VirtualBox refused (``lockMachine``, ``launchVMProcess``), oldest first:
        a log beside the model, which it leaves as it was."""
        try:
            text = self._refusals.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines()]

    @property
    def _refusals(self) -> Path:
        return self.path.with_name("refusals.jsonl")

    def _refused(self, machine: dict[str, Any], call: str) -> None:
        with self._refusals.open("a") as log:  # under the model's flock (``change``)
            log.write(json.dumps({"vm": machine["name"], "call": call}) + "\n")

    def unlock(self, ref: str, session: str) -> None:
        with self.change() as data:
            machine = find(data, ref)
            held = [h for h in machine["sessions"] if h["id"] == session]
            if not held:
                raise Fault(INVALID_OBJECT_STATE, "The session is not locked")
            machine["sessions"].remove(held[0])

    def _held(self, machine: dict[str, Any], session: str) -> str:
        for holder in machine["sessions"]:
            if holder["id"] == session:
                return str(holder["kind"])
        raise Fault(
            INVALID_OBJECT_STATE,
            f"The machine is not mutable: lock it in a session first (state {machine['state']})",
        )

    # ---------------------------------------------------------------- folders

    def save_folders(self, ref: str, session: str, folders: list[dict[str, Any]]) -> None:
        """``saveSettings``: the session machine's permanent folders become the machine's."""
        with self.change() as data:
            machine = find(data, ref)
            kind = self._held(machine, session)
            if kind == "write" and machine["state"] in RUNNING:  # cannot happen: kept honest
                raise Fault(INVALID_VM_STATE, "The machine is running")
            if kind == "shared" and machine["state"] not in RUNNING:
                raise Fault(INVALID_VM_STATE, "The machine is not running")
            machine["folders"] = folders
            self._sync(machine)

    def check_mutable(self, ref: str, session: str) -> None:
        with self.change() as data:
            machine = find(data, ref)
            kind = self._held(machine, session)
            if kind == "shared" and machine["state"] not in RUNNING:
                raise Fault(INVALID_VM_STATE, "The machine is not running")

    def add_transient(self, ref: str, session: str, folder: dict[str, Any]) -> None:
        with self.change() as data:
            machine = find(data, ref)
            self._held(machine, session)
            if machine["state"] not in RUNNING:
                raise Fault(
                    INVALID_VM_STATE,
                    f"Machine '{machine['name']}' is not currently running",
                )
            check_folder(folder, machine["transient"], FILE_ERROR)
            machine["transient"].append(folder)
            self._sync(machine)

    def remove_transient(self, ref: str, session: str, name: str) -> None:
        with self.change() as data:
            machine = find(data, ref)
            self._held(machine, session)
            if machine["state"] not in RUNNING:
                raise Fault(INVALID_VM_STATE, f"Machine '{machine['name']}' is not running")
            found = [f for f in machine["transient"] if f["name"] == name]
            if not found:
                raise Fault(OBJECT_NOT_FOUND, f"Could not find a shared folder named '{name}'.")
            machine["transient"].remove(found[0])
            self._sync(machine)

    # ---------------------------------------------------------------- the rest

    def set_extradata(self, ref: str, key: str, value: str) -> None:
        with self.change() as data:
            extradata = find(data, ref)["extradata"]
            if value:
                extradata[key] = value
            else:
                extradata.pop(key, None)

    def start(self, ref: str) -> None:
        refused: Fault | None = None
        with self.change() as data:
            machine = find(data, ref)
            if machine["state"] in RUNNING:
                raise Fault(INVALID_VM_STATE, f"The machine '{machine['name']}' is already running")
            if machine["sessions"]:
                # MachineImpl.cpp, launchVMProcess: any lock (a stopped VM's write lock) blocks it
                refused = Fault(
                    INVALID_OBJECT_STATE,
                    f"The machine '{machine['name']}' is already locked by a session "
                    "(or being locked or unlocked)",
                )
                self._refused(machine, "launchVMProcess")
            else:
                self._power_on(machine)
        if refused is not None:
            raise refused

    def _power_on(self, machine: dict[str, Any]) -> None:
        machine["state"] = "running"
        machine["sessions"].append({"id": VM_PROCESS, "kind": "vm"})
        props = {}
        if machine["ga"]:
            props["/VirtualBox/GuestAdd/Version"] = machine["ga"]
            for n, address in enumerate(machine["addresses"]):
                props[f"/VirtualBox/GuestInfo/Net/{n}/V4/IP"] = address
        machine["properties"] = props
        self._sync(machine)

    def stop(self, ref: str) -> None:
        with self.change() as data:
            machine = find(data, ref)
            if machine["state"] not in RUNNING:
                raise Fault(INVALID_VM_STATE, f"Machine '{machine['name']}' is not running")
            machine["state"] = "poweroff"
            machine["transient"] = []
            machine["sessions"] = [s for s in machine["sessions"] if s["kind"] != "vm"]
            # Guest Additions' version stays; the network facts go with the VM
            machine["properties"] = {
                k: v for k, v in machine["properties"].items() if "/GuestInfo/Net/" not in k
            }
            self._sync(machine)

    def _sync(self, machine: dict[str, Any]) -> None:
        """Hand the running VM's folders to the libvirt domain that stands for it (bridge.py)."""
        if machine.get("domain"):
            from tests.testbed.vbox.bridge import sync

            sync(machine)


def find(data: dict[str, Any], ref: str) -> dict[str, Any]:
    for machine in data["machines"]:
        if ref in (machine["name"], machine["uuid"]):
            return machine  # type: ignore[no-any-return]
    raise Fault(OBJECT_NOT_FOUND, f"Could not find a registered machine named '{ref}'")


def check_folder(folder: dict[str, Any], existing: list[dict[str, Any]], duplicate: int) -> None:
    name, path = folder["name"], folder["hostPath"]
    if not name or any(ch in name for ch in " \t\n\r"):
        raise Fault(INVALID_ARG, f"Invalid shared folder name '{name}'")
    if not path.startswith("/"):
        raise Fault(INVALID_ARG, f"Shared folder path '{path}' is not absolute")
    if any(f["name"] == name for f in existing):
        raise Fault(duplicate, f"Shared folder named '{name}' already exists")


def live_folders(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The running VM's folders by name: permanent ones, overridden by transient ones."""
    if machine["state"] not in RUNNING:
        return {}
    live = {f["name"]: f for f in machine["folders"]}
    live.update({f["name"]: f for f in machine["transient"]})
    return live


def domain_frozen(domain: str) -> bool:
    """Whether the libvirt test domain that stands for a VM is paused: its guest is frozen (the
    VirtualBox VM runs, but nothing in the guest answers)."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        return bool(conn.lookupByName(domain).info()[0] == libvirt.VIR_DOMAIN_PAUSED)
    finally:
        conn.close()


def run_in_domain(
    domain: str, argv: list[str], timeout: float, stdin: bytes | None = None
) -> tuple[int | None, bytes, bytes]:
    """Run ``argv`` in the libvirt test domain that stands for a VM, through its guest agent:
    (exit code, stdout, stderr); None for a command that outlived ``timeout`` (killed in the
    guest, as VirtualBox does: busybox timeout), 127 for one that could not start."""
    import time

    import libvirt

    from tests.testbed.domain import agent_exec

    seconds = max(1, math.ceil(timeout))
    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByName(domain)
        started = time.monotonic()
        try:
            wrapped = ["timeout", "-s", "KILL", str(seconds), *argv]
            code, out, err = agent_exec(dom, wrapped, stdin=stdin, timeout=seconds + 30)
        except libvirt.libvirtError as exc:  # the program could not start
            return 127, b"", str(exc).encode()
        if code in (137, -9) and time.monotonic() - started >= seconds:
            return None, out, err
        return code, out, err
    finally:
        conn.close()
