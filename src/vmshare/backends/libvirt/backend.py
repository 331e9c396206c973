"""QEMU/KVM through libvirt: virtiofs and 9p filesystem devices; guest access by the agent.

Every wait on libvirt is bounded. libvirt's own open has no deadline (a socket that accepts and
never answers hangs it forever), so it runs in a worker thread that vmshare stops waiting for after
``OPEN_TIMEOUT``; the binding releases the GIL during the call. Once open, libvirt's keepalive
(``KEEPALIVE_INTERVAL`` x ``KEEPALIVE_COUNT``, driven by libvirt's default event loop in a daemon
thread) closes a connection whose daemon stops answering, which fails the call that waits on it.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from collections.abc import Iterator
from typing import Any

import libvirt

from vmshare.backends.base import Backend
from vmshare.backends.libvirt import domain_xml
from vmshare.backends.libvirt.agent import READY_TIMEOUT, AgentChannel
from vmshare.backends.libvirt.capabilities import SHARED_MEMORY, capabilities, find_hint, guest_hint
from vmshare.backends.libvirt.settings import LibvirtVm
from vmshare.errors import (
    BackendUnavailable,
    GuestError,
    HypervisorError,
    NotFoundError,
    UsageError,
    VmshareError,
)
from vmshare.facts import (
    FsDevice,
    Scope,
    VmFacts,
)
from vmshare.guest.channel import GuestChannel
from vmshare.guest.ssh import SshChannel
from vmshare.spec import VmSpec

# libvirt prints every error to stderr by default; vmshare reports errors itself.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

OPEN_TIMEOUT = 15.0  # s: to open the connection (connect, authenticate, the daemon's hello)
KEEPALIVE_INTERVAL = 5  # s: between keepalive probes on an open connection
KEEPALIVE_COUNT = 3  # unanswered probes after which libvirt closes it: ~5 x (3 + 1) = 20 s
SHUTDOWN_TIMEOUT = 60.0  # s: a graceful shutdown before the VM is forced off
UNPLUG_TIMEOUT = 30.0  # s: for the guest to release a hot-unplugged device
AGENT_TIMEOUT = READY_TIMEOUT  # s: for the guest agent to answer after the VM starts

_event_loop_lock = threading.Lock()
_event_loop_running = False


def _message(exc: libvirt.libvirtError) -> str:
    return str(exc.get_error_message() or exc)


def _start_event_loop() -> None:
    """libvirt's default event loop in a daemon thread: keepalive needs one (once a process)."""
    global _event_loop_running
    with _event_loop_lock:
        if _event_loop_running:
            return
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
        _event_loop_running = True


def _run_event_loop() -> None:
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            time.sleep(0.1)


def open_connection(uri: str, timeout: float = OPEN_TIMEOUT) -> libvirt.virConnect:
    """libvirt.open(uri) with a deadline, and keepalive on the connection it returns.

    The open runs in a daemon thread; after ``timeout`` vmshare stops waiting for it (a late
    connection is closed by that thread), so the process can report and exit.
    """
    _start_event_loop()
    lock = threading.Lock()
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        conn, error = None, None
        try:
            conn = libvirt.open(uri)
            # a driver without keepalive (test:///, a local session) has nothing to probe
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        except libvirt.libvirtError as exc:
            error = exc
        with lock:
            if outcome.get("abandoned"):
                if conn is not None:
                    conn.close()
                return
            outcome.update(conn=conn, error=error)

    worker = threading.Thread(target=attempt, name="libvirt-open", daemon=True)
    worker.start()
    worker.join(timeout)
    with lock:
        if "conn" not in outcome:
            outcome["abandoned"] = True
            raise BackendUnavailable(
                f"libvirt at {uri} did not answer within {timeout:g} s "
                "(connection deadline); vmshare stopped waiting",
                hint=f"is libvirtd hung or is something else listening there? "
                f"try `virsh -c {shlex.quote(uri)} list`",
            )
    if outcome["error"] is not None:
        raise BackendUnavailable(
            f"cannot connect to libvirt at {uri}: {_message(outcome['error'])}",
            hint=f"is libvirtd running? try `virsh -c {shlex.quote(uri)} list`",
        )
    conn: libvirt.virConnect = outcome["conn"]
    return conn


class LibvirtBackend(Backend):
    name = "libvirt"

    def __init__(self, settings: LibvirtVm) -> None:
        super().__init__(settings)
        self.settings: LibvirtVm = settings
        self._conn: libvirt.virConnect | None = None
        self._unavailable: BackendUnavailable | None = None  # an open that failed: do not retry

    @property
    def conn(self) -> libvirt.virConnect:
        if self._unavailable is not None:
            raise self._unavailable
        if self._conn is None:
            try:
                self._conn = open_connection(self.connection)
            except BackendUnavailable as exc:
                self._unavailable = exc
                raise
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(libvirt.libvirtError):  # closed already (keepalive)
                conn.close()

    @contextlib.contextmanager
    def sdk_errors(self) -> Iterator[None]:
        """A libvirt error that escapes a call: a lost connection as BackendUnavailable naming
        the keepalive, anything else as HypervisorError."""
        try:
            yield
        except libvirt.libvirtError as exc:
            raise self._lost(exc) or HypervisorError(
                f"libvirt failed: {_message(exc)}",
                hint=f"check the VM with `virsh -c {shlex.quote(self.connection)} dumpxml`",
            ) from None

    def _lost(self, exc: libvirt.libvirtError) -> BackendUnavailable | None:
        """The error to report when ``exc`` means the connection itself is gone."""
        if self._conn is None:
            return None
        try:
            alive = bool(self._conn.isAlive())
        except libvirt.libvirtError:
            alive = False
        if alive:
            return None
        return BackendUnavailable(
            f"lost the connection to libvirt at {self.connection}: {_message(exc)} (keepalive "
            f"deadline: {KEEPALIVE_COUNT} probes {KEEPALIVE_INTERVAL} s apart, about "
            f"{KEEPALIVE_INTERVAL * (KEEPALIVE_COUNT + 1)} s without an answer, or the daemon "
            "closed it)",
            hint="is libvirtd hung or restarting? try "
            f"`virsh -c {shlex.quote(self.connection)} list`; `vmshare status` then shows what is "
            "in place",
        )

    def domain(self, vm: str) -> libvirt.virDomain:
        try:
            return self.conn.lookupByName(vm)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise self._lost(exc) or VmshareError(
                    f"libvirt could not look up VM {vm!r}: {_message(exc)}"
                ) from None
        try:
            return self.conn.lookupByUUIDString(vm)
        except libvirt.libvirtError as exc:
            lost = self._lost(exc)
            if lost is not None:
                raise lost from None
            raise NotFoundError(
                f"VM {vm!r} not found on {self.connection}",
                hint=f"list VMs with `virsh -c {shlex.quote(self.connection)} list --all`",
            ) from None

    # --------------------------------------------------------------------- facts

    def inspect(self, vm: str) -> VmFacts:
        facts = VmFacts(
            name=vm,
            backend=self.name,
            connection=self.connection,
            find_hint=find_hint(self.connection),
            guest_hint=guest_hint(vm),
        )
        try:
            dom = self.domain(vm)
        except NotFoundError:
            return facts
        config_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        running = bool(dom.isActive())
        live_xml = dom.XMLDesc(0) if running else None
        facts.exists = True
        facts.uuid = dom.UUIDString()
        facts.running = running
        facts.persistent_devices = {
            t: d for t, (d, _) in domain_xml.filesystems(config_xml).items()
        }
        facts.capabilities = capabilities(
            running=running,
            acpi=domain_xml.has_acpi(live_xml or config_xml),
            shared_memory_config=domain_xml.has_shared_memory(config_xml),
            shared_memory_live=bool(live_xml) and domain_xml.has_shared_memory(live_xml or ""),
            user_networking=domain_xml.has_user_networking(live_xml or config_xml),
        )
        facts.capabilities.guest_os = domain_xml.guest_os(config_xml)
        if live_xml:
            facts.running_devices = {t: d for t, (d, _) in domain_xml.filesystems(live_xml).items()}
            facts.addresses = self._agent_addresses(AgentChannel(lambda: dom, vm))
        return facts

    @staticmethod
    def _agent_addresses(agent: AgentChannel) -> list[str]:
        """The guest's addresses from its agent's interface list (none if it does not answer).

        Asked through the agent channel, with its deadline: libvirt's interfaceAddresses waits
        for the agent with no deadline of its own (a stuck agent would hang it for good).
        """
        try:
            interfaces = agent.command("guest-network-get-interfaces")
        except GuestError:
            return []
        return [
            str(address.get("ip-address"))
            for interface in sorted(interfaces, key=lambda i: str(i.get("name")))
            if interface.get("name") != "lo"
            for address in interface.get("ip-addresses") or []
            if not str(address.get("ip-address")).startswith(("127.", "::1", "fe80:"))
        ]

    def guest_channel(self, vm: VmSpec) -> GuestChannel:
        if vm.guest.channel == "ssh":
            return SshChannel(vm.guest)
        agent = AgentChannel(lambda: self.domain(vm.name), vm.name)
        if vm.guest.channel == "auto" and vm.guest.ssh_host and not agent.ping():
            return SshChannel(vm.guest)
        return agent

    # ------------------------------------------------------------------- actions

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
        if protocol not in ("virtiofs", "9p"):
            raise UsageError(f"libvirt has no {protocol} device", hint="use virtiofs or 9p")
        device = FsDevice(tag=tag, source=source, protocol=protocol, readonly=readonly)
        live, config = "running" in scopes, "persistent" in scopes
        dom = self.domain(vm)
        # Idempotent: a device already in place (a rerun after a crash, a restored share)
        # is not attached twice.
        if config and tag in domain_xml.filesystems(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)):
            config = False
        if live and (not dom.isActive() or tag in domain_xml.filesystems(dom.XMLDesc(0))):
            live = False
        flags = (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (
            libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0
        )
        if not flags:
            return None
        try:
            dom.attachDeviceFlags(domain_xml.filesystem_xml(device), flags)
        except libvirt.libvirtError as exc:
            raise self._lost(exc) or VmshareError(
                f"libvirt refused the {protocol} device for {source}: {_message(exc)}",
                hint="check the domain with `virsh dumpxml`; nothing was left attached",
            ) from None
        return None

    def detach_share(self, *, vm: str, tag: str, scopes: list[Scope]) -> str | None:
        live, config = "running" in scopes, "persistent" in scopes
        dom = self.domain(vm)
        note = None
        if config:
            found = domain_xml.filesystems(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).get(tag)
            if found:
                self._detach(dom, found[1], libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        if live and dom.isActive():
            found = domain_xml.filesystems(dom.XMLDesc(0)).get(tag)
            if found and found[0].protocol == "virtiofs":
                self._detach(dom, found[1], libvirt.VIR_DOMAIN_AFFECT_LIVE)
                self._wait_gone(dom, tag)
            elif found and vm not in self.restart_follows:
                note = f"the 9p device {tag} leaves the running VM {vm!r} at its next restart"
        return note

    def _detach(self, dom: libvirt.virDomain, xml: str, flags: int) -> None:
        try:
            dom.detachDeviceFlags(xml, flags)
        except libvirt.libvirtError as exc:
            raise self._lost(exc) or VmshareError(
                f"libvirt could not detach the share device: {_message(exc)}",
                hint="unmount it in the guest first; `virsh dumpxml` shows the device",
            ) from None

    def _wait_gone(self, dom: libvirt.virDomain, tag: str, timeout: float = UNPLUG_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while tag in domain_xml.filesystems(dom.XMLDesc(0)):
            if time.monotonic() > deadline:
                raise VmshareError(
                    f"the guest did not release device {tag} within {timeout:g} s "
                    "(hot-unplug deadline)",
                    hint="the guest must answer ACPI hot-unplug; restart the VM to finish",
                )
            time.sleep(0.2)

    def prepare(self, *, vm: str, prerequisite: str) -> str | None:
        if prerequisite != SHARED_MEMORY:
            raise UsageError(f"libvirt cannot prepare {prerequisite!r}", hint="a bug: report it")
        dom = self.domain(vm)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        if domain_xml.has_shared_memory(xml):
            return None
        try:
            self.conn.defineXML(domain_xml.with_shared_memory(xml))
        except libvirt.libvirtError as exc:
            raise self._lost(exc) or VmshareError(
                f"libvirt refused shared memory backing for {vm!r}: {_message(exc)}",
                hint="virtiofs needs <memoryBacking><access mode='shared'/>; try --protocol 9p",
            ) from None
        return f"VM {vm!r} now has shared memory backing (needed by virtiofs); it stays in place"

    def start(self, *, vm: str) -> str | None:
        dom = self.domain(vm)
        if not dom.isActive():
            try:
                dom.create()
            except libvirt.libvirtError as exc:
                raise self._lost(exc) or VmshareError(
                    f"VM {vm!r} did not start: {_message(exc)}", hint="see `virsh start`"
                ) from None
        AgentChannel(lambda: self.domain(vm), vm).wait_ready(AGENT_TIMEOUT)
        return None

    def restart(self, *, vm: str) -> str | None:
        """Graceful shutdown (agent, then ACPI), forced off after SHUTDOWN_TIMEOUT, then start.

        A VM that is off stays off: its config already holds the change.
        """
        dom = self.domain(vm)
        if not dom.isActive():
            return f"VM {vm!r} is off; the change applies when it next starts"
        for flag in (
            libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT,
            libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN,
        ):
            try:
                dom.shutdownFlags(flag)
                break
            except libvirt.libvirtError:
                continue
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        while dom.isActive() and time.monotonic() < deadline:
            time.sleep(0.5)
        forced = bool(dom.isActive())
        if forced:
            dom.destroy()
        self.start(vm=vm)
        return f"VM {vm!r} was powered off after {SHUTDOWN_TIMEOUT:g} s" if forced else None


BACKEND = LibvirtBackend
