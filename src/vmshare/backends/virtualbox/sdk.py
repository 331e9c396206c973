"""The SDK adapter: VirtualBox's Main API through pyvbox (``virtualbox``), which needs
``vboxapi`` from VirtualBox's own SDK to reach a real VirtualBox.

Locking follows VirtualBox's rules: a permanent folder is created on the session's machine and
saved (``save_settings``), under a write lock while the VM is off and a shared lock while it runs
(VirtualBox 6.0 and later change shared folders at runtime); a transient folder goes through the
running VM's console under a shared lock. The lock is always released.

API differences handled (pyvbox 2.1 is generated from the 6.1 API): ``createSharedFolder`` takes
``autoMountPoint`` since 6.0 (5.x had four arguments: not supported); VirtualBox 7's symlink
policy for folders (``SymlinkPolicy``, not in the 6.1 API) is not set, so folders get
VirtualBox's default policy, and symlink creation is the
``VBoxInternal2/SharedFoldersEnableSymlinksCreate/NAME`` extradata that every version reads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from vmshare.backends.virtualbox.adapter import Adapter, Folder, Machine, Quote, python_quote
from vmshare.backends.virtualbox.results import OBJECT_NOT_FOUND, vbox_error, waiting_for_lock
from vmshare.errors import GuestError, GuestTimeout, VmshareError, never_ran
from vmshare.guest.channel import GuestResult
from vmshare.secret_value import Secret

# MachineState values in VBoxManage's words (pyvbox's str() of 5 is "FirstOnline", an alias)
STATES = {
    1: "poweroff",
    2: "saved",
    3: "teleported",
    4: "aborted",
    5: "running",
    6: "paused",
    7: "stuck",
    10: "starting",
    11: "stopping",
    12: "saving",
    13: "restoring",
}
NAT = 1  # NetworkAttachmentType.NAT
SESSION_START_WAIT = 5.0  # s: pyvbox's IGuest.create_session waits 50 x 0.1 s for the start


class SdkAdapter(Adapter):
    name = "sdk"
    quoting = "python"
    permanent_while_running = True

    def __init__(self, vbox: Any, new_session: Callable[[], Any]) -> None:
        self.vbox, self.new_session = vbox, new_session

    @classmethod
    def connect(cls) -> SdkAdapter:
        import virtualbox

        with sdk_call("connect to VirtualBox's API"):
            return cls(virtualbox.VirtualBox(), virtualbox.Session)

    # ------------------------------------------------------------------ reading

    def _find(self, vm: str) -> Any:
        with sdk_call(f"find VM {vm!r}"):
            return self.vbox.find_machine(vm)

    def names(self) -> list[str]:
        with sdk_call("list the VMs"):
            return [str(m.name) for m in self.vbox.machines]

    def version(self) -> str:
        with sdk_call("report its version"):
            return str(self.vbox.version)

    def machine(self, vm: str) -> Machine | None:
        try:
            found = self._find(vm)
        except VmshareError as exc:
            if getattr(exc, "vbox_code", None) == OBJECT_NOT_FOUND:
                return None
            raise
        with sdk_call(f"read VM {vm!r}"):
            state = STATES.get(int(found.state), f"state {int(found.state)}")
            folders = [folder(f, transient=False) for f in found.shared_folders]
            names, values, _, _ = found.enumerate_guest_properties("")
            nat = int(found.get_network_adapter(0).attachment_type) == NAT
            uuid, name = str(found.id_p), str(found.name)
        if state in ("running", "paused"):
            with self._locked(found, "shared", f"read VM {vm!r}'s transient folders") as session:
                folders += [folder(f, transient=True) for f in session.console.shared_folders]
        return Machine(
            name=name,
            uuid=uuid,
            state=state,
            folders=folders,
            properties=dict(zip(names, values, strict=True)),
            nat=nat,
        )

    def extradata(self, vm: str, key: str) -> str:
        found = self._find(vm)
        with sdk_call(f"read extradata of VM {vm!r}"):
            return str(found.get_extra_data(key))

    # ------------------------------------------------------------------ changes

    @contextlib.contextmanager
    def _locked(self, machine: Any, kind: str, what: str) -> Iterator[Any]:
        from virtualbox.library import LockType

        session = self.new_session()
        lock_type = LockType.write if kind == "write" else LockType.shared

        def lock() -> None:
            with sdk_call(what):
                machine.lock_machine(session, lock_type)

        waiting_for_lock(lock)  # another client's lock is often let go within moments
        try:
            with sdk_call(what):
                yield session
        finally:
            with contextlib.suppress(Exception):  # the change's own error is the one to show
                session.unlock_machine()

    def _running(self, machine: Any) -> bool:
        return STATES.get(int(machine.state)) in ("running", "paused")

    def set_extradata(self, vm: str, key: str, value: str) -> None:
        found = self._find(vm)
        with sdk_call(f"set extradata of VM {vm!r}"):
            found.set_extra_data(key, value)

    def add_folder(self, vm: str, folder: Folder) -> None:
        found = self._find(vm)
        args = (folder.name, folder.host_path, folder.writable, folder.automount)
        what = f"add shared folder {folder.name} to VM {vm!r}"
        if folder.transient:
            with self._locked(found, "shared", what) as session:
                session.console.create_shared_folder(*args, folder.auto_mount_point)
            return
        lock = "shared" if self._running(found) else "write"
        with self._locked(found, lock, what) as session:
            session.machine.create_shared_folder(*args, folder.auto_mount_point)
            session.machine.save_settings()

    def remove_folder(self, vm: str, name: str, *, transient: bool) -> None:
        found = self._find(vm)
        what = f"remove shared folder {name} from VM {vm!r}"
        if transient:
            with self._locked(found, "shared", what) as session:
                session.console.remove_shared_folder(name)
            return
        lock = "shared" if self._running(found) else "write"
        with self._locked(found, lock, what) as session:
            session.machine.remove_shared_folder(name)
            session.machine.save_settings()

    def start(self, vm: str) -> None:
        found = self._find(vm)
        session = self.new_session()

        def launch() -> Any:
            with sdk_call(f"start VM {vm!r}"):
                return found.launch_vm_process(session, "headless", [])

        progress = waiting_for_lock(launch)  # a stopped VM's lock blocks its start
        with sdk_call(f"start VM {vm!r}"):
            progress.wait_for_completion(-1)
        with contextlib.suppress(Exception):
            session.unlock_machine()

    def stop(self, vm: str, *, force: bool) -> None:
        found = self._find(vm)
        with self._locked(found, "shared", f"stop VM {vm!r}") as session:
            if force:
                session.console.power_down().wait_for_completion(-1)
            else:
                session.console.power_button()

    def guest_run(
        self,
        vm: str,
        user: str,
        password: Secret,
        argv: Sequence[str],
        stdin: bytes | None,
        timeout: float,
    ) -> GuestResult:
        """pyvbox's ``IGuest.create_session`` (it waits for the session to start), then the
        steps of its ``IGuestSession.execute``, which cannot be called as it is (its stdin
        goes to ``write_array`` as a map object, which the generated check refuses)."""
        found = self._find(vm)
        what = f"run {argv[0]!r} in VM {vm!r}"
        with self._locked(found, "shared", what) as session:
            try:
                gs = session.console.guest.create_session(user, password.reveal(), "", "vmshare")
            except SystemError as exc:  # pyvbox's "GuestSession failed to start"
                # no session, so no process was started: the step never ran
                raise never_ran(
                    GuestError(
                        f"VirtualBox guest control in VM {vm!r} did not start a session within "
                        f"{SESSION_START_WAIT:g} s ({exc}): the guest is frozen or still booting, "
                        "or the login is wrong",
                        hint="check that the guest runs and answers, Guest Additions in it, and "
                        "[vm.NAME.guest] login_user and login_password",
                    )
                ) from None
            try:
                return run_process(gs, argv, stdin or b"", timeout)
            finally:
                with contextlib.suppress(Exception):
                    gs.close()

    # ------------------------------------------------------------------ plan

    def describe_add(
        self, vm: str, folder: Folder, quote: Quote = python_quote, *, running: bool = False
    ) -> list[str]:
        args = (
            f"{quote(folder.name)}, {quote(folder.host_path)}, writable={folder.writable}, "
            f"automount={folder.automount}, auto_mount_point={quote(folder.auto_mount_point)}"
        )
        find = f"machine = vbox.find_machine({quote(vm)})"
        if folder.transient:
            return [
                find,
                "machine.lock_machine(session, LockType.shared)",
                f"session.console.create_shared_folder({args})",
                "session.unlock_machine()",
            ]
        return [
            find,
            f"machine.lock_machine(session, LockType.{'shared' if running else 'write'})",
            f"session.machine.create_shared_folder({args})",
            "session.machine.save_settings()",
            "session.unlock_machine()",
        ]

    def describe_remove(
        self, vm: str, name: str, *, transient: bool, quote: Quote = python_quote
    ) -> list[str]:
        where = "console" if transient else "machine"
        lock = "shared)" if transient else "write)  # LockType.shared while it runs"
        return [
            f"machine = vbox.find_machine({quote(vm)})",
            f"machine.lock_machine(session, LockType.{lock}",
            f"session.{where}.remove_shared_folder({quote(name)})",
            *([] if transient else ["session.machine.save_settings()"]),
            "session.unlock_machine()",
        ]

    def describe_extradata(
        self, vm: str, key: str, value: str, quote: Quote = python_quote
    ) -> list[str]:
        return [f"vbox.find_machine({quote(vm)}).set_extra_data({quote(key)}, {quote(value)})"]

    def describe_power(self, vm: str, action: str, quote: Quote = python_quote) -> list[str]:
        find = f"machine = vbox.find_machine({quote(vm)})"
        lock, unlock = "machine.lock_machine(session, LockType.shared)", "session.unlock_machine()"
        stop = [
            find,
            *(lock, "session.console.power_button()", unlock),
            "# only if it is still running at the deadline:",
            *(lock, "session.console.power_down().wait_for_completion(-1)", unlock),
        ]
        start = [find, "machine.launch_vm_process(session, 'headless', []).wait_for_completion(-1)"]
        return {"stop": stop, "start": start, "restart": stop + start}.get(action, [])


def run_process(gs: Any, argv: Sequence[str], stdin: bytes, timeout: float) -> GuestResult:
    from virtualbox.library import (
        ProcessCreateFlag,
        ProcessInputFlag,
        ProcessPriority,
        ProcessStatus,
        ProcessWaitForFlag,
    )

    ms = max(1, int(timeout * 1000))
    flags = [ProcessCreateFlag.wait_for_std_out, ProcessCreateFlag.wait_for_std_err]
    process = gs.process_create_ex(argv[0], list(argv), [], flags, ms, ProcessPriority.default, [])
    process.wait_for(int(ProcessWaitForFlag.start), ms)
    index = 0
    while index < len(stdin):  # octets as pyvbox passes them: decimal strings
        octets = [str(b) for b in stdin[index : index + 65536]]
        wrote = int(process.write_array(0, [ProcessInputFlag.none], octets, ms))
        if wrote <= 0:
            raise GuestError(f"guest command {argv[0]} took no input", hint="check the guest")
        index += wrote
    process.write_array(0, [ProcessInputFlag.end_of_file], [], ms)
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    running = (ProcessStatus.starting, ProcessStatus.started)
    while process.status in running:
        if time.monotonic() > deadline:
            with contextlib.suppress(Exception):
                process.terminate()
            raise GuestTimeout(
                f"guest command {argv[0]} did not finish within {timeout:g} s; vmshare stopped it",
                hint="check the guest (is it overloaded or frozen?) and run it again",
                may_still_run=False,
            )
        process.wait_for(int(ProcessWaitForFlag.terminate), 200)
        out += _octets(process.read(1, 65536, 0))
        err += _octets(process.read(2, 65536, 0))
    while chunk := _octets(process.read(1, 65536, 0)):
        out += chunk
    while chunk := _octets(process.read(2, 65536, 0)):
        err += chunk
    status = str(process.status)
    if status in ("TimedOutKilled", "TimedOutAbnormally"):
        raise GuestTimeout(
            f"guest command {argv[0]} did not finish within {timeout:g} s; VirtualBox stopped it",
            hint="check the guest (is it overloaded or frozen?) and run it again",
            may_still_run=status == "TimedOutAbnormally",
        )
    if status != "TerminatedNormally":
        raise GuestError(
            f"guest command {argv[0]} ended {status}", hint="check that it exists in the guest"
        )
    return GuestResult(int(process.exit_code), bytes(out), bytes(err))


def _octets(data: Any) -> bytes:
    return data.encode("latin-1") if isinstance(data, str) else bytes(data or b"")


def folder(shared: Any, *, transient: bool) -> Folder:
    return Folder(
        name=str(shared.name),
        host_path=str(shared.host_path),
        writable=bool(shared.writable),
        automount=bool(shared.auto_mount),
        auto_mount_point=str(shared.auto_mount_point),
        transient=transient,
    )


@contextlib.contextmanager
def sdk_call(what: str) -> Iterator[None]:
    """pyvbox's VBoxError (it carries VirtualBox's result code) as a vmshare error."""
    try:
        yield
    except VmshareError:
        raise
    except Exception as exc:
        code = getattr(exc, "value", None)
        if not isinstance(code, int) or code < 0:
            raise
        error = vbox_error(code, str(getattr(exc, "msg", "") or exc), what)
        error.vbox_code = code & 0xFFFFFFFF  # type: ignore[attr-defined]
        raise error from None
