"""VirtualBox: vboxsf shared folders through one adapter (the SDK or VBoxManage), NFS/SMB for a
guest without Guest Additions, guest commands through guest control (or ssh).

Share names are the share's device tag (``names``), never the user's string. A running VM gets a
transient folder, and the permanent one too when the share persists; a stopped VM gets the
permanent one. VBoxManage changes a permanent folder only while the VM is off (it takes the
write lock), so with that adapter a running VM is stopped for its permanent folder and started
again (``needs_off``; the plan asks for --restart), while the SDK changes it on the running VM's
session machine. Removal takes away exactly the folders of that name and the symlink extradata
key.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vmshare.backends.base import Backend, Diagnosis
from vmshare.backends.virtualbox.adapter import Adapter, Folder, Machine, build_adapter
from vmshare.backends.virtualbox.capabilities import (
    PERMANENT_ADD_INSTEAD,
    PERMANENT_ADD_OFF,
    PERMANENT_REMOVE_INSTEAD,
    PERMANENT_REMOVE_OFF,
    addresses,
    capabilities,
    devices,
    guest_additions,
)
from vmshare.backends.virtualbox.channel import GuestControlChannel
from vmshare.backends.virtualbox.names import folder_name, symlinks_key
from vmshare.backends.virtualbox.settings import VirtualboxVm
from vmshare.errors import GuestError, HypervisorError, NotFoundError, VmshareError
from vmshare.facts import Scope, VmFacts
from vmshare.guest.channel import GuestChannel
from vmshare.guest.ssh import SshChannel
from vmshare.plan.power import NeedsOff
from vmshare.plan.step import POWER, Step
from vmshare.secret_value import Secret
from vmshare.secrets import resolve_secret
from vmshare.spec import VmSpec

START_TIMEOUT = 300.0  # s: for Guest Additions to report after the VM starts
SHUTDOWN_TIMEOUT = 120.0  # s: an ACPI shutdown before the VM is powered off
FIND_HINT = "check the name with `VBoxManage list vms` (a name or UUID works)"
GUEST_HINT = (
    "install Guest Additions in the guest and set [vm.{vm}.guest] login_user and "
    'login_password_env, or set [vm.{vm}.guest] channel = "ssh" and ssh_host'
)


class VirtualboxBackend(Backend):
    name = "virtualbox"

    def __init__(self, settings: VirtualboxVm) -> None:
        super().__init__(settings)
        self.vbox = settings
        self._adapter: Adapter | None = None
        self.why = ""
        # the VMs this backend found: one that is gone afterwards was deleted while vmshare
        # worked on it, and its folders went with it (a rollback's detach has nothing to do)
        self._seen: set[str] = set()

    @property
    def adapter(self) -> Adapter:
        if self._adapter is None:
            self._adapter, self.why = build_adapter(self.vbox.adapter)
        return self._adapter

    @contextmanager
    def sdk_errors(self) -> Iterator[None]:
        yield  # both adapters raise vmshare errors already (results.py)

    def close(self) -> None:
        if self._adapter is not None:
            adapter, self._adapter = self._adapter, None
            adapter.close()

    def ref(self, vm: str) -> str:
        """What VirtualBox calls the VM: the settings' machine (name or UUID), or its name."""
        if vm == self.vbox.name and self.vbox.machine:
            return self.vbox.machine
        return vm

    def _lookup(self, vm: str) -> Machine | None:
        found = self.adapter.machine(self.ref(vm))
        if found is not None:
            self._seen.add(self.ref(vm))
        return found

    def _machine(self, vm: str) -> Machine:
        found = self._lookup(vm)
        if found is None:
            raise NotFoundError(
                f"VM {self.ref(vm)!r} not found in VirtualBox", hint=self._find_hint(vm)
            )
        return found

    def _find_hint(self, vm: str) -> str:
        try:
            names = self.adapter.names()
        except VmshareError:
            return FIND_HINT
        close = difflib.get_close_matches(self.ref(vm), names, n=3, cutoff=0.6)
        return f"did you mean {', '.join(map(repr, close))}? " + FIND_HINT if close else FIND_HINT

    # -------------------------------------------------------------------- facts

    def inspect(self, vm: str) -> VmFacts:
        facts = VmFacts(
            name=vm,
            backend=self.name,
            connection=self.connection,
            find_hint=FIND_HINT,
            guest_hint=GUEST_HINT.format(vm=vm),
        )
        found = self._lookup(vm)
        if found is None:
            return facts.model_copy(update={"find_hint": self._find_hint(vm)})
        permanent, live = devices(found)
        version = guest_additions(found)
        return facts.model_copy(
            update={
                "exists": True,
                "uuid": found.uuid,
                "running": found.running,
                "capabilities": capabilities(found, self.adapter, self.ref(vm), self.vbox.symlinks),
                "persistent_devices": permanent,
                "running_devices": live,
                "addresses": addresses(found) if found.running else [],
                "address_reason": "Guest Additions' /VirtualBox/GuestInfo/Net/N/V4/IP",
                "guest_tools": f"Guest Additions {version}" if version else "no Guest Additions",
            }
        )

    def diagnose(self, vm: str) -> list[Diagnosis]:
        try:
            adapter = self.adapter
            version = adapter.version()
        except VmshareError as exc:
            return [Diagnosis("virtualbox adapter", "fail", exc.message, exc.hint)]
        rows = [
            Diagnosis("virtualbox adapter", "ok", f"{adapter.name}: {self.why}"),
            Diagnosis("virtualbox version", "ok", version),
        ]
        try:
            found = self._machine(vm)
        except VmshareError as exc:
            return [*rows, Diagnosis(f"virtualbox vm {vm}", "fail", exc.message, exc.hint)]
        rows.append(
            Diagnosis(f"virtualbox vm {vm}", "ok", f"{found.name} ({found.uuid}), {found.state}")
        )
        ga = guest_additions(found)
        if ga:
            rows.append(Diagnosis("guest additions", "ok", f"{ga}: vboxsf shares"))
        else:
            rows.append(
                Diagnosis(
                    "guest additions",
                    "warn",
                    "not reported: no vboxsf, shares use nfs or smb",
                    "install Guest Additions in the guest for vboxsf and guest control",
                )
            )
        return rows

    def guest_channel(self, vm: VmSpec) -> GuestChannel:
        access = vm.guest
        native_login = access.login_password is not None
        if access.channel == "ssh" or (
            access.channel == "auto" and access.ssh_host and not native_login
        ):
            return SshChannel(access)
        return GuestControlChannel(
            self.adapter, self.ref(vm.name), access.login_user, self._password(vm)
        )

    def _password(self, vm: VmSpec) -> Callable[[], Secret]:
        access = vm.guest

        def password() -> Secret:
            if access.login_password is None:
                raise GuestError(
                    f"VirtualBox guest control in VM {vm.name!r} needs a guest login",
                    hint=GUEST_HINT.format(vm=vm.name),
                )
            what = f"the guest password of {access.login_user} in VM {vm.name!r}"
            return resolve_secret(access.login_password, what)

        return password

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
        if protocol != "vboxsf":
            raise HypervisorError(
                f"VirtualBox shares folders as vboxsf, not {protocol}",
                hint="use --protocol auto, vboxsf, nfs or smb",
            )
        name = folder_name(tag)
        found = self._machine(vm)
        ref = self.ref(vm)
        if "running" in scopes and not found.running:
            raise HypervisorError(
                f"VM {ref!r} is {found.state}: a transient folder needs it running",
                hint="start the VM (or pass --restart), and plan again",
            )
        key = symlinks_key(name)
        if self.vbox.symlinks and self.adapter.extradata(ref, key) != "1":
            # VirtualBox reads the key when the VM starts: a folder for the running VM now
            # would share without it (the plan restarts the VM instead: capabilities)
            if found.running and "running" in scopes:
                raise HypervisorError(
                    f"symlink creation for a new folder of VM {ref!r} takes effect only when "
                    f"the VM starts, and it is {found.state}",
                    hint="pass --restart (the folder is added, then the VM restarts), stop the "
                    "VM first, or set [vm.NAME] symlinks = false",
                )
            self.adapter.set_extradata(ref, key, "1")
        for scope, transient in (("running", True), ("persistent", False)):
            made = {f.name for f in found.folders if f.transient == transient}
            if scope in scopes and name not in made:
                folder = Folder(name, source, writable=not readonly, transient=transient)
                self.adapter.add_folder(ref, folder)
        return None

    def detach_share(self, *, vm: str, tag: str, scopes: list[Scope]) -> str | None:
        name = folder_name(tag)
        found = self._unless_gone(vm, "its folders went with it")
        if isinstance(found, str):
            return found
        ref = self.ref(vm)
        for folder in found.folders:
            if folder.name != name:
                continue
            if (folder.transient and "running" in scopes) or (
                not folder.transient and "persistent" in scopes
            ):
                self.adapter.remove_folder(ref, name, transient=folder.transient)
        key = symlinks_key(name)
        if self.adapter.extradata(ref, key):
            self.adapter.set_extradata(ref, key, "")
        return None

    def explain(self, step: Step) -> list[str]:
        """The exact VBoxManage commands or SDK calls of an attach, a detach or a power step,
        in order."""
        if step.layer == "hypervisor" and step.action in POWER:
            return self.adapter.describe_power(self.ref(step.vm), step.action)
        if step.layer != "hypervisor" or step.action not in ("attach_share", "detach_share"):
            return []
        args, adapter = step.args, self.adapter
        name = folder_name(args["tag"])
        try:
            ref, found = self.ref(step.vm), self._machine(step.vm)
            key = symlinks_key(name)
            lines: list[str] = []
            if step.action == "detach_share":
                for folder in found.folders:
                    scope = "running" if folder.transient else "persistent"
                    if folder.name == name and scope in args["scopes"]:
                        lines += adapter.describe_remove(ref, name, transient=folder.transient)
                if adapter.extradata(ref, key):
                    lines += adapter.describe_extradata(ref, key, "")
                return lines
            if self.vbox.symlinks and adapter.extradata(ref, key) != "1":
                lines += adapter.describe_extradata(ref, key, "1")
            for scope, transient in (("running", True), ("persistent", False)):
                if scope in args["scopes"]:
                    writable = not args["readonly"]
                    folder = Folder(name, args["source"], writable=writable, transient=transient)
                    lines += adapter.describe_add(ref, folder, running=found.running)
            return lines
        except VmshareError:
            return []  # the plan says what is wrong; nothing to explain

    def prepare(self, *, vm: str, prerequisite: str) -> str | None:
        raise HypervisorError(f"VirtualBox has no prerequisite {prerequisite!r} to prepare")

    def _unless_gone(self, vm: str, what: str) -> Machine | str:
        """The VM, or a note when this backend saw it before and it was deleted meanwhile (a
        rollback after it vanished has nothing left to change); a VM never seen is not found."""
        found = self._lookup(vm)
        if found is None and self.ref(vm) in self._seen:
            return f"VM {self.ref(vm)!r} was deleted from VirtualBox meanwhile: {what}"
        return found if found is not None else self._machine(vm)

    def start(self, *, vm: str) -> str | None:
        found = self._unless_gone(vm, "nothing to start")
        if isinstance(found, str):
            return found
        if not found.running:
            self.adapter.start(self.ref(vm))
        deadline = time.monotonic() + START_TIMEOUT
        while guest_additions(self._machine(vm)) is None:
            if time.monotonic() > deadline:
                raise GuestError(
                    f"Guest Additions in VM {vm!r} did not report within {START_TIMEOUT:g} s",
                    hint=GUEST_HINT.format(vm=vm),
                )
            time.sleep(2)
        return None

    def restart(self, *, vm: str) -> str | None:
        if not self._machine(vm).running:
            return f"VM {vm!r} is off; the change applies when it next starts"
        note = self.stop(vm=vm)
        self.start(vm=vm)
        return note

    def stop(self, *, vm: str) -> str | None:
        found = self._unless_gone(vm, "nothing to stop")
        if isinstance(found, str) or not found.running:
            return found if isinstance(found, str) else None
        ref = self.ref(vm)
        self.adapter.stop(ref, force=False)
        forced = not self._wait_off(vm, SHUTDOWN_TIMEOUT)
        if forced:
            self.adapter.stop(ref, force=True)
            if not self._wait_off(vm, SHUTDOWN_TIMEOUT):
                raise HypervisorError(
                    f"VM {ref!r} did not power off",
                    hint="check it in VirtualBox (`VBoxManage showvminfo VM`), and try again",
                )
        return f"VM {vm!r} was powered off (no clean guest shutdown)" if forced else None

    def needs_off(self, step: Step) -> NeedsOff | None:
        """VBoxManage changes a permanent folder only while the VM is off (the write lock): an
        attach of the permanent folder alone, which the plan asks of a running VM only when
        it stops the VM for it (``config_needs_off``), and a detach of a permanent folder that
        exists."""
        if step.layer != "hypervisor" or step.action not in ("attach_share", "detach_share"):
            return None
        scopes = step.args.get("scopes", [])
        if self.adapter.permanent_while_running or "persistent" not in scopes:
            return None
        found = self._lookup(step.vm)
        if found is None or not found.running:
            return None
        if step.action == "attach_share":
            if "running" in scopes:
                return None
            return NeedsOff(PERMANENT_ADD_OFF, PERMANENT_ADD_INSTEAD)
        name = folder_name(step.args["tag"])
        if any(f.name == name and not f.transient for f in found.folders):
            return NeedsOff(PERMANENT_REMOVE_OFF, PERMANENT_REMOVE_INSTEAD)
        return None

    def _wait_off(self, vm: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._machine(vm).running:
                return True
            time.sleep(1)
        return False


BACKEND = VirtualboxBackend
