"""A COM-level fake of VirtualBox's Main API, for real pyvbox code:
``virtualbox.VirtualBox(interface=ComVirtualBox(model))`` and
``virtualbox.Session(interface=ComSession())``.

Each class stands for one COM interface and offers only COM's own names (``findMachine``,
``lockMachine``, ``sharedFolders``...) with COM's arguments; tests/unit/test_vbox_fake_api.py
checks every one against pyvbox's library.py. The rules live in the shared machine model
(model.py). Guest processes run in the libvirt test domain that stands for the VM (the model's
``domain``), through its guest agent.
"""

from __future__ import annotations

import itertools
from typing import Any

from tests.testbed.vbox.model import (
    OBJECT_IN_USE,
    OBJECT_NOT_FOUND,
    RUNNING,
    Fault,
    Model,
    check_folder,
    domain_frozen,
    live_folders,
    run_in_domain,
)

STATES = {"poweroff": 1, "saved": 2, "aborted": 4, "running": 5, "paused": 6}
LOCK_TYPES = {1: "shared", 2: "write"}
NAT, BRIDGED = 1, 2
_ids = itertools.count(1)


class ComVirtualBox:
    def __init__(
        self,
        model: Model,
        version: str = "7.0.14",
    ) -> None:
        self.model, self._version = model, version

    @property
    def version(self) -> str:
        return self._version

    @property
    def machines(self) -> list[ComMachine]:
        return [ComMachine(self, m["uuid"]) for m in self.model.read()["machines"]]

    def findMachine(self, nameOrId: str) -> ComMachine:
        return ComMachine(self, self.model.machine(nameOrId)["uuid"])


class ComSharedFolder:
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    name = property(lambda self: self._data["name"])
    hostPath = property(lambda self: self._data["hostPath"])
    writable = property(lambda self: self._data["writable"])
    autoMount = property(lambda self: self._data["autoMount"])
    autoMountPoint = property(lambda self: self._data["autoMountPoint"])
    accessible = property(lambda self: True)


class ComNetworkAdapter:
    def __init__(self, attachment: int) -> None:
        self._attachment = attachment

    @property
    def attachmentType(self) -> int:
        return self._attachment


class ComProgress:
    completed = True
    resultCode = 0

    def waitForCompletion(self, timeout: int) -> None:
        return None


class ComMachine:
    """IMachine: the registered machine, or with ``session`` the session's mutable machine,
    whose permanent folder changes wait in the session until ``saveSettings``."""

    def __init__(self, vbox: ComVirtualBox, uuid: str, session: ComSession | None = None) -> None:
        self._vbox, self._uuid, self._session = vbox, uuid, session

    def _data(self) -> dict[str, Any]:
        return self._vbox.model.machine(self._uuid)

    name = property(lambda self: self._data()["name"])
    id = property(lambda self: self._uuid)
    state = property(lambda self: STATES[self._data()["state"]])

    @property
    def sharedFolders(self) -> list[ComSharedFolder]:
        if self._session is not None and self._session._pending is not None:
            return [ComSharedFolder(f) for f in self._session._pending]
        return [ComSharedFolder(f) for f in self._data()["folders"]]

    def lockMachine(self, session: ComSession, lockType: int) -> None:
        kind = LOCK_TYPES.get(int(lockType))
        if kind is None:
            raise Fault(0x80070057, f"lock type {lockType} is not supported here")
        self._vbox.model.lock(self._uuid, session._id, kind)
        session._attach(self._vbox, self._uuid)

    def getExtraData(self, key: str) -> str:
        return str(self._data()["extradata"].get(key, ""))

    def setExtraData(self, key: str, value: str) -> None:
        self._vbox.model.set_extradata(self._uuid, key, value)

    def enumerateGuestProperties(self, patterns: str) -> tuple[list[str], ...]:
        props = self._data()["properties"]
        names = sorted(props)
        return names, [props[n] for n in names], [0] * len(names), [""] * len(names)

    def getNetworkAdapter(self, slot: int) -> ComNetworkAdapter:
        nic = self._data()["nic1"] if slot == 0 else "null"
        return ComNetworkAdapter({"nat": NAT, "bridged": BRIDGED}.get(nic, 0))

    def launchVMProcess(
        self, session: ComSession, name: str, environmentChanges: list[str]
    ) -> ComProgress:
        self._vbox.model.start(self._uuid)
        return ComProgress()

    # the session machine's folder changes
    def _pending(self) -> list[dict[str, Any]]:
        if self._session is None or self._session._pending is None:
            raise Fault(
                0x80BB0002,  # VBOX_E_INVALID_VM_STATE
                "The machine is not mutable: changes need the machine of a locked session",
            )
        self._vbox.model.check_mutable(self._uuid, self._session._id)
        return self._session._pending

    def createSharedFolder(
        self,
        name: str,
        hostPath: str,
        writable: bool,
        automount: bool,
        autoMountPoint: str,
    ) -> None:
        pending = self._pending()
        folder = folder_data(name, hostPath, writable, automount, autoMountPoint)
        check_folder(folder, pending, OBJECT_IN_USE)
        pending.append(folder)

    def removeSharedFolder(self, name: str) -> None:
        pending = self._pending()
        found = [f for f in pending if f["name"] == name]
        if not found:
            raise Fault(OBJECT_NOT_FOUND, f"Could not find a shared folder named '{name}'.")
        pending.remove(found[0])

    def saveSettings(self) -> None:
        pending = self._pending()
        self._vbox.model.save_folders(self._uuid, self._session._id, list(pending))  # type: ignore[union-attr]


class ComSession:
    """ISession: ``machine`` and ``console`` exist while it holds a lock."""

    def __init__(self) -> None:
        self._id = f"session-{next(_ids)}"
        self._vbox: ComVirtualBox | None = None
        self._uuid: str | None = None
        self._pending: list[dict[str, Any]] | None = None

    def _attach(self, vbox: ComVirtualBox, uuid: str) -> None:
        self._vbox, self._uuid = vbox, uuid
        self._pending = [dict(f) for f in vbox.model.machine(uuid)["folders"]]

    @property
    def state(self) -> int:
        return 2 if self._uuid else 1  # Locked / Unlocked

    @property
    def machine(self) -> ComMachine:
        if self._vbox is None or self._uuid is None:
            raise Fault(0x80BB000B, "The session is not locked")  # INVALID_SESSION_STATE
        return ComMachine(self._vbox, self._uuid, self)

    @property
    def console(self) -> ComConsole | None:
        if self._vbox is None or self._uuid is None:
            raise Fault(0x80BB000B, "The session is not locked")
        if self._vbox.model.machine(self._uuid)["state"] not in RUNNING:
            return None  # a session of a VM that does not run has no console
        return ComConsole(self._vbox, self._uuid, self)

    def unlockMachine(self) -> None:
        if self._vbox is None or self._uuid is None:
            raise Fault(0x80BB000B, "The session is not locked")
        vbox, uuid = self._vbox, self._uuid
        self._vbox = self._uuid = None
        self._pending = None  # unsaved changes are discarded, as VirtualBox does
        try:
            vbox.model.unlock(uuid, self._id)
        except Fault as exc:
            if exc.hresult != OBJECT_NOT_FOUND:  # the VM vanished: its lock went with it
                raise


class ComConsole:
    def __init__(self, vbox: ComVirtualBox, uuid: str, session: ComSession) -> None:
        self._vbox, self._uuid, self._session = vbox, uuid, session

    @property
    def sharedFolders(self) -> list[ComSharedFolder]:
        return [ComSharedFolder(f) for f in self._vbox.model.machine(self._uuid)["transient"]]

    def createSharedFolder(
        self,
        name: str,
        hostPath: str,
        writable: bool,
        automount: bool,
        autoMountPoint: str,
    ) -> None:
        folder = folder_data(name, hostPath, writable, automount, autoMountPoint)
        self._vbox.model.add_transient(self._uuid, self._session._id, folder)

    def removeSharedFolder(self, name: str) -> None:
        self._vbox.model.remove_transient(self._uuid, self._session._id, name)

    def powerDown(self) -> ComProgress:
        self._vbox.model.stop(self._uuid)
        return ComProgress()

    def powerButton(self) -> None:
        self._vbox.model.stop(self._uuid)  # the guest shuts down at once here

    @property
    def guest(self) -> ComGuest:
        return ComGuest(self._vbox, self._uuid)


class ComGuest:
    def __init__(self, vbox: ComVirtualBox, uuid: str) -> None:
        self._vbox, self._uuid = vbox, uuid

    def createSession(
        self, user: str, password: str, domain: str, sessionName: str
    ) -> ComGuestSession:
        machine = self._vbox.model.machine(self._uuid)
        ok = machine["logins"].get(user) == password and bool(machine["domain"])
        return ComGuestSession(machine["domain"] if ok else None)


class ComGuestSession:
    def __init__(self, domain: str | None) -> None:
        self._domain = domain

    @property
    def status(self) -> int:
        if self._domain and domain_frozen(self._domain):
            return 10  # Starting: a frozen guest's Guest Additions never start the session
        return 100 if self._domain else 800  # Started / Error (a wrong login)

    def processCreateEx(
        self,
        executable: str,
        arguments: list[str],
        environmentChanges: list[str],
        flags: list[int],
        timeoutMS: int,
        priority: int,
        affinity: list[int],
    ) -> ComProcess:
        if not self._domain:
            raise Fault(0x80BB0005, "The guest session is not started")  # VBOX_E_IPRT_ERROR
        return ComProcess(self._domain, [executable, *arguments[1:]], timeoutMS)

    def close(self) -> None:
        self._domain = None


class ComProcess:
    """IGuestProcess: the program runs in the real guest when its status is first asked
    after its input ended (pyvbox writes stdin, then polls ``status``)."""

    def __init__(self, domain: str, argv: list[str], timeout_ms: int) -> None:
        self._domain, self._argv, self._timeout = domain, argv, timeout_ms / 1000
        self._stdin = bytearray()
        self._eof = False
        self._result: tuple[int, bytes, bytes] | None = None
        self._status = 100  # Started
        self._out = {1: b"", 2: b""}

    def _run(self) -> None:
        if self._result is not None or not self._eof:
            return
        code, out, err = run_in_domain(self._domain, self._argv, self._timeout, bytes(self._stdin))
        if code is None:
            self._result, self._status = (-1, b"", b""), 512  # TimedOutKilled
            return
        self._result = (code, out, err)
        self._status = 500 if code >= 0 else 800  # TerminatedNormally / Error
        self._out = {1: out, 2: err}

    @property
    def status(self) -> int:
        self._run()
        return self._status

    @property
    def exitCode(self) -> int:
        self._run()
        return self._result[0] if self._result else 0

    def waitFor(self, waitFor: int, timeoutMS: int) -> int:
        self._run()
        return 2 if self._result is not None else 1  # Terminate / Start

    def writeArray(self, handle: int, flags: list[int], data: list[str], timeoutMS: int) -> int:
        self._stdin += bytes(int(x) for x in data)
        if 1 in [int(f) for f in flags]:  # ProcessInputFlag.EndOfFile
            self._eof = True
        return len(data)

    def read(self, handle: int, toRead: int, timeoutMS: int) -> bytes:
        self._run()
        data = self._out.get(handle, b"")
        self._out[handle] = data[toRead:]
        return data[:toRead]

    def terminate(self) -> None:
        self._status = 510  # TerminatedSignal


def folder_data(
    name: str, host_path: str, writable: bool, automount: bool, point: str
) -> dict[str, Any]:
    return {
        "name": name,
        "hostPath": host_path,
        "writable": bool(writable),
        "autoMount": bool(automount),
        "autoMountPoint": point,
    }


__all__ = ["ComSession", "ComVirtualBox", "live_folders"]
