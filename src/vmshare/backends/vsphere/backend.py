"""VMware vSphere / ESXi through pyVmomi: no host-folder device, so shares are NFS or SMB
exports to the VM's address that VMware Tools reports, mounted in the guest through VMware Tools
guest operations (or ssh).

One session per server per run (the Session keeps one backend per connection key), opened on
first use and logged out by ``close``. Every call runs inside ``sdk_errors`` (faults by type).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from pyVmomi import vim

from vmshare.backends.base import Backend, Diagnosis
from vmshare.backends.vsphere import record as records
from vmshare.backends.vsphere.faults import vim_errors
from vmshare.backends.vsphere.guestops import ToolsChannel
from vmshare.backends.vsphere.lookup import (
    VmRef,
    datacenters,
    find_vm,
    inventory_path,
    not_found,
    vm_index,
    vm_properties,
)
from vmshare.backends.vsphere.session import (
    CONNECT_TIMEOUT,
    Endpoint,
    close_session,
    open_session,
)
from vmshare.backends.vsphere.settings import VsphereVm
from vmshare.backends.vsphere.transfer import Transfer
from vmshare.errors import (
    BackendUnavailable,
    GuestError,
    HypervisorError,
    NotFoundError,
    VmshareError,
)
from vmshare.facts import Capabilities, Scope, VmFacts
from vmshare.guest.channel import GuestChannel
from vmshare.guest.ssh import SshChannel
from vmshare.secrets import resolve_secret
from vmshare.spec import VmSpec

log = logging.getLogger("vmshare.vsphere")

TASK_TIMEOUT = 300.0  # s: for a power task
TOOLS_TIMEOUT = 300.0  # s: for VMware Tools to run after the VM starts
SHUTDOWN_TIMEOUT = 120.0  # s: a guest shutdown before the VM is powered off
TOOLS_RUNNING = "guestToolsRunning"
# progress(what, percent): percent is None while the server gives none (queued, or no figure)
TaskProgress = Callable[[str, int | None], None]
NO_DEVICE = (
    "vSphere has no device that hands a workstation's folder to a VM; vmshare shares over "
    "nfs or smb"
)
GUEST_HINT = (
    "make sure VMware Tools (open-vm-tools) runs in the guest and [vm.{vm}.guest] login_user "
    'and login_password are right, or set [vm.{vm}.guest] channel = "ssh" and ssh_host'
)


def endpoint_of(settings: VsphereVm) -> Endpoint:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (the settings model checked it)."""
    server, port = settings.server, 443
    head, sep, tail = server.rpartition(":")
    bracketed = head.startswith("[") and head.endswith("]")
    if sep and tail.isdigit() and (bracketed or ":" not in head):
        server, port = head, int(tail)
    return Endpoint(server.strip("[]"), port, settings.user, settings.insecure, settings.ca_file)


class VsphereBackend(Backend):
    name = "vsphere"

    def __init__(self, settings: VsphereVm) -> None:
        super().__init__(settings)
        self.vsphere = settings
        self.endpoint = endpoint_of(settings)
        self._instance: Any = None
        self._content: Any = None
        self._scope: tuple[Any, str | None] | None = None
        self._found: dict[str, VmRef] = {}
        self.task_progress: TaskProgress | None = None  # a caller's hook for slow tasks
        self._logins: dict[str, Any] = {}

    # ------------------------------------------------------------------ session

    @contextmanager
    def sdk_errors(self) -> Iterator[None]:
        with vim_errors(self.endpoint.label, CONNECT_TIMEOUT):
            yield

    @property
    def content(self) -> Any:
        """The server's ServiceContent: read once per session (it does not change)."""
        if self._instance is None:
            what = f"the vSphere password of {self.vsphere.user}@{self.vsphere.server}"
            password = resolve_secret(self.vsphere.password, what)
            self._instance = open_session(self.endpoint, password.reveal())
            self._content = None
            self._scope = None
            self._found = {}
        if self._content is None:
            self._content = self._instance.RetrieveContent()
        return self._content

    def close(self) -> None:
        if self._instance is not None:
            instance, self._instance = self._instance, None
            self._content = self._scope = None
            self._found.clear()
            close_session(instance)

    def _root(self) -> tuple[Any, str | None]:
        """Where lookups search: every datacenter, or the VM folder of the one the settings
        name (and its inventory path, which an inventory path must start with)."""
        if self._scope is None:
            content = self.content
            wanted = self.vsphere.datacenter
            if wanted is None:
                self._scope = (content.rootFolder, None)
            else:
                found = [row for row in datacenters(content) if row.get("name") == wanted]
                if not found:
                    raise NotFoundError(
                        f"datacenter {wanted!r} not found on {self.endpoint.label}",
                        hint="check [vm.NAME] datacenter, or leave it out to search every "
                        "datacenter",
                    )
                self._scope = (found[0]["vmFolder"], inventory_path(content, found[0]["_obj"]))
        return self._scope

    def _find(self, vm: str) -> VmRef | None:
        self._root()  # an unknown datacenter is an error, not a missing VM
        try:
            return self._vm(vm)
        except NotFoundError:
            return None

    def _vm(self, vm: str) -> VmRef:
        """The VM ``vm`` names; found once per session (a VM's object id does not change)."""
        if vm in self._found:
            return self._found[vm]
        root, within = self._root()
        found, index = find_vm(self.content, root, vm, within)
        if found is None:
            if index is None:
                index = vm_index(self.content, root, uuids=False)
            raise not_found(vm, self.endpoint.label, [ref.name for ref in index])
        self._found[vm] = found
        return found

    # -------------------------------------------------------------------- facts

    def inspect(self, vm: str) -> VmFacts:
        facts = VmFacts(
            name=vm,
            backend=self.name,
            connection=self.connection,
            find_hint="check the VM's name in the vSphere client; an inventory path "
            "(datacenter/vm/folder/name) or a BIOS/instance UUID works too",
            guest_hint=GUEST_HINT.format(vm=vm),
        )
        found = self._find(vm)
        if found is None:
            return facts
        props = vm_properties(self.content, found.obj)
        running = props.get("runtime.powerState") == "poweredOn"
        windows = props.get("guest.guestFamily") == "windowsGuest"
        addresses, reason = choose_addresses(props)
        return facts.model_copy(
            update={
                "exists": True,
                "uuid": props.get("config.uuid"),
                "running": running,
                "addresses": addresses if running else [],
                "address_reason": reason,
                "guest_tools": guest_tools(props),
                "capabilities": Capabilities(
                    devices=[],
                    network=["smb"] if windows else ["nfs", "smb"],
                    guest_os="windows" if windows else "linux",
                    records=True,
                    record_where=f"extraConfig {records.PREFIX}{{tag}}",
                ),
                "records": self._records(found),
                "warnings": self._warnings(),
            }
        )

    def _warnings(self) -> list[str]:
        endpoint = self.endpoint
        if not endpoint.insecure:
            return []
        return [
            f"certificate checks are off for {endpoint.label} (insecure = true): vmshare cannot "
            "tell the real server from an impostor; give its CA with ca_file instead"
        ]

    def diagnose(self, vm: str) -> list[Diagnosis]:
        """The server's TLS, the login, the API version and product, the VM, its Tools; a
        failure ends the list (the next check needs what failed). No secret in any row."""
        label = self.endpoint.label
        rows = [self._diagnose_tls()]
        if rows[-1].status == "fail":
            return rows
        try:
            with self.sdk_errors():
                about = self.content.about
        except VmshareError as exc:
            return [*rows, Diagnosis("vsphere login", "fail", exc.message, exc.hint)]
        rows.append(Diagnosis("vsphere login", "ok", f"{self.vsphere.user} logged in at {label}"))
        rows.append(
            Diagnosis(
                "vsphere server",
                "ok",
                f"{about.fullName} (API {about.apiVersion}, {about.apiType})",
            )
        )
        try:
            with self.sdk_errors():
                found = self._vm(vm)
                props = vm_properties(self.content, found.obj)
                where = inventory_path(self.content, found.obj)
        except VmshareError as exc:
            return [*rows, Diagnosis(f"vsphere vm {vm}", "fail", exc.message, exc.hint)]
        power = props.get("runtime.powerState") or "unknown"
        rows.append(Diagnosis(f"vsphere vm {vm}", "ok", f"{where} ({found.obj._moId}), {power}"))
        tools = guest_tools(props)
        if props.get("guest.toolsRunningStatus") == TOOLS_RUNNING:
            rows.append(Diagnosis("vmware tools", "ok", tools))
        elif power == "poweredOn":
            rows.append(
                Diagnosis(
                    "vmware tools",
                    "warn",
                    f"{tools}: no guest address or guest operations",
                    GUEST_HINT.format(vm=vm),
                )
            )
        else:
            rows.append(Diagnosis("vmware tools", "info", f"{tools}: the VM is not running"))
        return rows

    def _diagnose_tls(self) -> Diagnosis:
        endpoint = self.endpoint
        if endpoint.insecure:
            return Diagnosis(
                "vsphere tls",
                "warn",
                f"certificate checks are off for {endpoint.label} (insecure = true)",
                "give the server's CA with [vm.NAME] ca_file and drop insecure = true",
            )
        trusted_by = f"the CA file {endpoint.ca_file}" if endpoint.ca_file else "the system CAs"
        try:
            with (
                self.sdk_errors(),
                socket.create_connection((endpoint.host, endpoint.port), timeout=10) as raw,
                endpoint.tls().wrap_socket(raw, server_hostname=endpoint.host),
            ):
                pass  # the handshake is the check
        except VmshareError as exc:
            return Diagnosis("vsphere tls", "fail", exc.message, exc.hint)
        return Diagnosis(
            "vsphere tls", "ok", f"{endpoint.label}: certificate trusted by {trusted_by}"
        )

    def guest_channel(self, vm: VmSpec) -> GuestChannel:
        access = vm.guest
        native_login = access.login_password is not None
        if access.channel == "ssh" or (
            access.channel == "auto" and access.ssh_host and not native_login
        ):
            return SshChannel(access)
        found = self._vm(vm.name)
        auth = self._login(vm)
        transfer = Transfer(self.endpoint.host, self.endpoint.port, self.endpoint.tls())
        return ToolsChannel(self.content, found.obj, auth, transfer, self.endpoint.label)

    def _login(self, vm: VmSpec) -> Callable[[], Any]:
        access = vm.guest

        def auth() -> Any:
            if vm.name not in self._logins:
                if access.login_password is None:
                    raise GuestError(
                        f"VMware Tools guest operations in VM {vm.name!r} need a guest login",
                        hint=f'set [vm.{vm.name}.guest] login_user and login_password_env = "NAME"'
                        ' (or channel = "ssh")',
                    )
                what = f"the guest password of {access.login_user} in VM {vm.name!r}"
                secret = resolve_secret(access.login_password, what)
                self._logins[vm.name] = vim.vm.guest.NamePasswordAuthentication(
                    username=access.login_user, password=secret.reveal(), interactiveSession=False
                )
            return self._logins[vm.name]

        return auth

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
        raise HypervisorError(NO_DEVICE, hint="use --protocol auto, nfs or smb")

    def detach_share(self, *, vm: str, tag: str, scopes: list[Scope]) -> str | None:
        self._vm(vm)  # there is never a device to take away; the VM must exist
        return None

    def prepare(self, *, vm: str, prerequisite: str) -> str | None:
        raise HypervisorError(f"vSphere has no prerequisite {prerequisite!r} to prepare")

    def start(self, *, vm: str) -> str | None:
        found = self._vm(vm)
        if vm_properties(self.content, found.obj).get("runtime.powerState") != "poweredOn":
            wait_task(
                found.obj.PowerOnVM_Task(), f"power on VM {vm!r}", progress=self.task_progress
            )
        self._wait_tools(found, vm)
        return None

    def restart(self, *, vm: str) -> str | None:
        found = self._vm(vm)
        props = vm_properties(self.content, found.obj)
        if props.get("runtime.powerState") != "poweredOn":
            return f"VM {vm!r} is off; the change applies when it next starts"
        forced = True
        if props.get("guest.toolsRunningStatus") == TOOLS_RUNNING:
            found.obj.ShutdownGuest()
            forced = not self._wait_power(found, "poweredOff", SHUTDOWN_TIMEOUT)
        if forced:
            wait_task(
                found.obj.PowerOffVM_Task(), f"power off VM {vm!r}", progress=self.task_progress
            )
        self.start(vm=vm)
        return f"VM {vm!r} was powered off (no clean guest shutdown)" if forced else None

    def record_share(self, *, vm: str, tag: str, record: dict[str, Any]) -> str | None:
        """Write the share's record into the VM's extraConfig (``guestinfo.vmshare.<tag>``);
        already there with this value: nothing to do (the simulator would append a copy)."""
        found = self._vm(vm)
        if self._records(found).get(tag) != record:
            spec = records.spec_setting(tag, record)
            wait_task(found.obj.ReconfigVM_Task(spec=spec), f"record share {tag} on VM {vm!r}")
        return None

    def forget_share(self, *, vm: str, tag: str) -> str | None:
        """Set the record's key to "" (vSphere deletes the key; the simulator keeps an empty
        last value, which reads as deleted)."""
        found = self._vm(vm)
        if tag in self._records(found):
            spec = records.spec_setting(tag, None)
            wait_task(found.obj.ReconfigVM_Task(spec=spec), f"forget share {tag} on VM {vm!r}")
        return None

    def _records(self, found: VmRef) -> dict[str, dict[str, Any]]:
        return records.records(records.extra_config(self.content, found.obj))

    def _wait_power(self, found: VmRef, state: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if vm_properties(self.content, found.obj).get("runtime.powerState") == state:
                return True
            time.sleep(1)
        return False

    def _tools_status(self, found: VmRef) -> Any:
        return vm_properties(self.content, found.obj).get("guest.toolsRunningStatus")

    def _wait_tools(self, found: VmRef, vm: str) -> None:
        deadline = time.monotonic() + TOOLS_TIMEOUT
        while (
            vm_properties(self.content, found.obj).get("guest.toolsRunningStatus") != TOOLS_RUNNING
        ):
            if time.monotonic() > deadline:
                raise GuestError(
                    f"VMware Tools in VM {vm!r} did not run within {TOOLS_TIMEOUT:g} s of the "
                    "VM starting",
                    hint=GUEST_HINT.format(vm=vm),
                )
            time.sleep(2)


def wait_task(
    task: Any,
    what: str,
    timeout: float = TASK_TIMEOUT,
    progress: TaskProgress | None = None,
    poll: float = 0.5,
) -> Any:
    """Wait for a vSphere task; its error is raised (and mapped by sdk_errors), a task that
    outlives the deadline is cancelled and reported.

    Each change of ``task.info.progress`` is logged (logger ``vmshare.vsphere``, INFO) and given
    to ``progress``; ``task.info`` is read once per poll (one round trip)."""
    deadline = time.monotonic() + timeout
    reported: object = ()  # nothing reported yet
    while True:
        info = task.info
        if info.state not in (vim.TaskInfo.State.queued, vim.TaskInfo.State.running):
            break
        percent = info.progress if info.state == vim.TaskInfo.State.running else None
        if percent != reported:
            reported = percent
            log.info("vSphere task to %s: %s", what, f"{percent}%" if percent else info.state)
            if progress is not None:
                progress(what, percent)
        if time.monotonic() > deadline:
            with suppress(Exception):  # the deadline error below says what happened
                task.CancelTask()
            raise BackendUnavailable(
                f"vSphere did not finish the task to {what} within {timeout:g} s (task deadline;"
                " the task was cancelled)",
                hint="see the VM's tasks in the vSphere client",
            )
        time.sleep(poll)
    if info.state == vim.TaskInfo.State.error:
        raise info.error
    if progress is not None and reported != 100:
        progress(what, 100)
    return info.result


def guest_tools(props: dict[str, Any]) -> str:
    status = props.get("guest.toolsRunningStatus") or "unknown"
    version = props.get("guest.toolsVersion")
    return f"{status} (version {version})" if version else str(status)


def choose_addresses(props: dict[str, Any]) -> tuple[list[str], str | None]:
    """The guest's IPv4 addresses, the one on a network this host reaches directly first, and
    why it was chosen. Asking the host's routing table which source address it would use is a
    local question: no packet is sent."""
    found: list[tuple[str, int]] = []
    for nic in props.get("guest.net") or []:
        for entry in getattr(getattr(nic, "ipConfig", None), "ipAddress", None) or []:
            found.append((str(entry.ipAddress), int(entry.prefixLength or 32)))
        for address in getattr(nic, "ipAddress", None) or []:
            found.append((str(address), 32))
    primary = props.get("guest.ipAddress")
    if primary:
        found.append((str(primary), 32))
    addresses = list(dict.fromkeys(a for a, _ in found if ":" not in a))
    if not addresses:
        return [], None
    prefixes = {a: p for a, p in reversed(found)}
    for address in addresses:
        local = _source_address(address)
        if local is not None and _same_network(local, address, prefixes.get(address, 32)):
            rest = [a for a in addresses if a != address]
            return [address, *rest], f"on the same network as this host's {local}"
    return addresses, "VMware Tools' primary address (no guest network is directly this host's)"


def _source_address(address: str) -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 9))  # UDP connect: a routing lookup, nothing is sent
            return str(probe.getsockname()[0])
    except OSError:
        return None


def _same_network(local: str, address: str, prefix: int) -> bool:
    import ipaddress

    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return local == address or ipaddress.ip_address(local) in network


BACKEND = VsphereBackend
