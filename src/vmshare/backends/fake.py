"""An in-memory hypervisor, host and guest for tests, like httpx's MockTransport.

``FakeBackend`` is a real ``Backend``: VMs with the capabilities a test gives them, whose verbs
change its devices, power state and (with ``records``) the records kept on a VM the way a
hypervisor would (a device the capabilities cannot
hot-plug is refused in the running scope, one that cannot unplug stays until a restart).
``FakeWorld`` adds a host and a guest kept in memory and is the executor's runtime, so a planner
test can plan, apply, re-plan and remove without any SDK, server or VM. Host exports are rendered
by vmshare's real exporters, so "already exported" is decided as on a real host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vmshare.backends.base import Backend
from vmshare.backends.settings import VmSettings
from vmshare.errors import GuestError, HypervisorError
from vmshare.facts import (
    Capabilities,
    Facts,
    FsDevice,
    GuestFacts,
    GuestMount,
    Scope,
    VmFacts,
    ancestors,
    gather,
)
from vmshare.guest.channel import GuestChannel
from vmshare.plan.power import NeedsOff
from vmshare.plan.step import Step
from vmshare.protocols import nfs, smb
from vmshare.spec import NfsHost, Spec, VmSpec


@dataclass
class FakeVm:
    name: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    running: bool = True
    addresses: list[str] = field(default_factory=lambda: ["192.0.2.10"])
    persistent: dict[str, FsDevice] = field(default_factory=dict)
    live: dict[str, FsDevice] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # with capabilities.records


class FakeSettings(VmSettings):
    """The fake hypervisor's settings: nothing to configure."""

    backend: str = "fake"

    @property
    def where(self) -> str:
        return "fake://"


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, *vms: FakeVm) -> None:
        super().__init__(FakeSettings(name="fake"))
        self.vms = {vm.name: vm for vm in vms}
        self.calls: list[str] = []

    def _vm(self, name: str) -> FakeVm:
        if name not in self.vms:
            raise HypervisorError(f"fake hypervisor has no VM {name!r}")
        return self.vms[name]

    def inspect(self, vm: str) -> VmFacts:
        facts = VmFacts(name=vm, backend=self.name, connection=self.connection)
        found = self.vms.get(vm)
        if found is None:
            return facts
        caps = found.capabilities.model_copy(deep=True)
        return facts.model_copy(
            update={
                "exists": True,
                "running": found.running,
                "capabilities": caps,
                "persistent_devices": dict(found.persistent),
                "running_devices": dict(found.live) if found.running else {},
                "addresses": list(found.addresses) if found.running else [],
                "records": {tag: dict(record) for tag, record in found.records.items()},
            }
        )

    def guest_channel(self, vm: VmSpec) -> GuestChannel:
        raise GuestError("the fake backend has no guest channel: FakeWorld's guest stands in")

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
        found = self._vm(vm)
        self.calls.append(f"attach_share {tag} {','.join(scopes)}")
        cap = found.capabilities.device(protocol)
        if cap is None:
            raise HypervisorError(f"fake VM {vm!r} offers no {protocol} device")
        device = FsDevice(tag=tag, source=source, protocol=protocol, readonly=readonly)
        if "persistent" in scopes and tag not in found.persistent:
            self._config_may_change(found, protocol)
        if "running" in scopes and found.running and tag not in found.live:
            if not cap.hotplug:
                raise HypervisorError(f"fake VM {vm!r} cannot hot-plug {protocol} now")
            found.live[tag] = device
        if "persistent" in scopes:
            found.persistent[tag] = device
        return None

    def detach_share(self, *, vm: str, tag: str, scopes: list[Scope]) -> str | None:
        found = self._vm(vm)
        self.calls.append(f"detach_share {tag} {','.join(scopes)}")
        if "persistent" in scopes and tag in found.persistent:
            self._config_may_change(found, found.persistent[tag].protocol)
            found.persistent.pop(tag, None)
        device = found.live.get(tag)
        if "running" in scopes and device is not None:
            cap = found.capabilities.device(device.protocol)
            if cap is not None and not cap.unplug:
                return f"device {tag} leaves the running VM {vm!r} at its next restart"
            del found.live[tag]
        return None

    def prepare(self, *, vm: str, prerequisite: str) -> str | None:
        found = self._vm(vm)
        self.calls.append(f"prepare {prerequisite}")
        for device in found.capabilities.devices:
            if any(p.name == prerequisite for p in device.missing):
                device.missing = [p for p in device.missing if p.name != prerequisite]
        return None

    def start(self, *, vm: str) -> str | None:
        found = self._vm(vm)
        self.calls.append("start")
        if not found.running:
            found.running, found.live = True, dict(found.persistent)
        return None

    def restart(self, *, vm: str) -> str | None:
        found = self._vm(vm)
        self.calls.append("restart")
        found.running, found.live = True, dict(found.persistent)
        return None

    def stop(self, *, vm: str) -> str | None:
        found = self._vm(vm)
        self.calls.append("stop")
        found.running, found.live = False, {}
        return None

    def needs_off(self, step: Step) -> NeedsOff | None:
        """A device's config that changes only while the VM is off (``config_needs_off``):
        an attach of the config alone, or a detach of a config device, on a running VM."""
        found = self.vms.get(step.vm)
        scopes = step.args.get("scopes", [])
        if found is None or not found.running or "persistent" not in scopes:
            return None
        if step.action == "attach_share" and "running" not in scopes:
            cap = found.capabilities.device(step.args["protocol"])
        elif step.action == "detach_share" and step.args["tag"] in found.persistent:
            cap = found.capabilities.device(found.persistent[step.args["tag"]].protocol)
        else:
            return None
        if cap is None or cap.config_needs_off is None:
            return None
        return NeedsOff(cap.config_needs_off, "or change it on a stopped VM")

    def _config_may_change(self, found: FakeVm, protocol: str) -> None:
        cap = found.capabilities.device(protocol)
        if found.running and cap is not None and cap.config_needs_off is not None:
            raise HypervisorError(f"fake VM {found.name!r} runs: {cap.config_needs_off}")

    def record_share(self, *, vm: str, tag: str, record: dict[str, Any]) -> str | None:
        found = self._records(vm)
        self.calls.append(f"record_share {tag}")
        found.records[tag] = dict(record)
        return None

    def forget_share(self, *, vm: str, tag: str) -> str | None:
        found = self._records(vm)
        self.calls.append(f"forget_share {tag}")
        found.records.pop(tag, None)
        return None

    def _records(self, vm: str) -> FakeVm:
        found = self._vm(vm)
        if not found.capabilities.records:
            raise HypervisorError(f"fake VM {vm!r} keeps no record of shares")
        return found


class FakeGuest:
    """A Linux guest in memory: the guest layer's actions and its inspect."""

    def __init__(self, gateway: str = "10.0.2.2") -> None:
        self.dirs: set[str] = set()
        self.mounts: dict[str, GuestMount] = {}
        self.fstab: dict[str, str] = {}
        self.files: dict[str, str] = {}
        self.gateway = gateway

    def inspect(self, targets: Sequence[str]) -> GuestFacts:
        wanted = {p for t in targets for p in [t, *ancestors(t)]}
        return GuestFacts(
            reachable=True,
            channel="fake",
            mounts=dict(self.mounts),
            fstab_entries=dict(self.fstab),
            existing_dirs=sorted(self.dirs & wanted),
            gateway=self.gateway,
        )

    def mkdir(self, path: str) -> None:
        self.dirs.update([path, *ancestors(path)])

    def rmdir_empty(self, path: str, parents: Sequence[str] = ()) -> str | None:
        for folder in [path, *parents]:
            if folder in self.mounts or any(d.startswith(folder + "/") for d in self.dirs):
                return f"left {folder}: not empty"
            self.dirs.discard(folder)
        return None

    def mount(
        self,
        source: str,
        target: str,
        fstype: str,
        options: list[str],
        fallbacks: list[Any] | None = None,
    ) -> None:
        if target not in self.dirs:
            raise GuestError(f"mount point {target} does not exist")
        self.mounts[target] = GuestMount(
            source=source, target=target, fstype=fstype, options=options
        )

    def unmount(self, target: str) -> None:
        self.mounts.pop(target, None)

    def probe(self, target: str, writable: bool) -> None:
        if target not in self.mounts:
            raise GuestError(f"{target} is not mounted")

    def fstab_add(self, entry_id: str, source: str, target: str, fstype: str, **_: Any) -> None:
        self.fstab[entry_id] = f"{source} {target} {fstype}"

    def fstab_remove(self, entry_id: str) -> None:
        self.fstab.pop(entry_id, None)

    def write_credentials(self, path: str, account: str, secret_name: str) -> None:
        self.files[path] = account

    def remove_file(self, path: str) -> None:
        self.files.pop(path, None)


class FakeHost:
    """The host layer in memory; entries are rendered by vmshare's real exporters."""

    def __init__(self) -> None:
        self.dirs: set[str] = set()
        self.exports: dict[str, dict[str, str]] = {"nfs": {}, "smb": {}}
        self.accounts: set[str] = set()

    def mkdir(self, path: str, owner: list[int] | None = None) -> None:
        self.dirs.add(path)

    def rmdir_empty(self, path: str, parents: Sequence[str] = ()) -> str | None:
        self.dirs.difference_update([path, *parents])
        return None

    def nfs_export(self, exporter: str, settings: dict[str, Any], export: dict[str, Any]) -> None:
        entry = nfs.NfsExport(**export)
        rendered = nfs.EXPORTERS[exporter](NfsHost(**settings)).render(entry)
        self.exports["nfs"][entry.entry_id] = rendered

    def nfs_unexport(self, exporter: str, settings: dict[str, Any], entry_id: str) -> None:
        self.exports["nfs"].pop(entry_id, None)

    def smb_account(self, settings: dict[str, Any]) -> None:
        self.accounts.add(settings["account"])

    def smb_account_remove(self, settings: dict[str, Any]) -> str | None:
        self.accounts.discard(settings["account"])
        return None

    def smb_share(self, settings: dict[str, Any], share: dict[str, Any]) -> None:
        entry = smb.SmbShare(**share)
        self.exports["smb"][entry.entry_id] = smb.render_section(entry)

    def smb_unshare(self, settings: dict[str, Any], entry_id: str) -> None:
        self.exports["smb"].pop(entry_id, None)


class FakeWorld:
    """A FakeBackend with a FakeHost and one FakeGuest per VM: the executor's runtime."""

    def __init__(self, backend: FakeBackend) -> None:
        self.backend, self.host = backend, FakeHost()
        self.guests = {name: FakeGuest() for name in backend.vms}

    def layer(self, layer: str, vm: str) -> Any:
        if layer == "host":
            return self.host
        if layer == "hypervisor":
            return self.backend
        return self.guests[vm]

    def probe_vm(self, vm: str, targets: list[str]) -> VmFacts:
        facts = self.backend.inspect(vm)
        if facts.running:
            facts.guest = self.guests[vm].inspect(targets)
        return facts

    def facts(self, spec: Spec, protocols: Sequence[str] = ("nfs", "smb")) -> Facts:
        """What a run would see now; exports only of ``protocols`` (what the run probes)."""
        facts = gather(spec, self.probe_vm)
        for protocol in protocols:
            facts.exports[protocol] = dict(self.host.exports[protocol])
        return facts

    def empty(self) -> bool:
        """Whether nothing vmshare makes is left anywhere."""
        guests = any(g.mounts or g.fstab or g.files for g in self.guests.values())
        devices = any(vm.persistent or vm.live or vm.records for vm in self.backend.vms.values())
        exports = any(self.host.exports.values())
        return not (guests or devices or exports or self.host.accounts)
