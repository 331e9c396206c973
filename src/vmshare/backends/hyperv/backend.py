"""Hyper-V through PowerShell (on this host, or over WinRM): no folder device, so a share is an
SMB share of the Windows host for one account, mounted by the guest (mount.cifs over ssh in
Linux guests, an SMB mapping through PowerShell Direct in Windows guests).

Discovery reads Get-VM, Get-VMIntegrationService, Get-VMNetworkAdapter and the KVP exchange
items; the VM's address falls back to Get-NetNeighbor by MAC, and the address the guest dials
is the host's own on the VM's switch. ``client_address``/``host_address`` override both.
"""

from __future__ import annotations

import difflib
import time
import xml.etree.ElementTree as ET
from typing import Any

from vmshare.backends.base import Backend, Diagnosis
from vmshare.backends.hyperv import scripts
from vmshare.backends.hyperv.host import WindowsHost
from vmshare.backends.hyperv.runner import runner_for
from vmshare.backends.hyperv.settings import HypervVm
from vmshare.errors import GuestError, HypervisorError, NotFoundError, VmshareError
from vmshare.facts import Capabilities, Scope, VmFacts
from vmshare.formats.powershell import PowerShellRunner, checked, json_result
from vmshare.guest import GuestOs
from vmshare.guest.channel import GuestChannel
from vmshare.guest.ssh import SshChannel
from vmshare.host import Host
from vmshare.secrets import SecretStore
from vmshare.spec import VmSpec

START_TIMEOUT = 300.0  # s: for a started VM's guest to report its address
NO_DEVICE = (
    "Hyper-V has no device that hands a host folder to a VM; vmshare shares it over SMB from "
    "the Windows host"
)
GUEST_HINT = (
    "Linux guests: set [vm.{vm}.guest] ssh_host (and ssh_key, ssh_known_hosts); Windows guests "
    "are reached through PowerShell Direct with [vm.{vm}.guest] login_user and "
    'login_password_env = "NAME"'
)


def guest_os_of(kvp_items: list[str]) -> GuestOs | None:
    """``windows``/``linux`` from the KVP intrinsic items (``OSName``), None when unknown."""
    for item in kvp_items:
        try:
            root = ET.fromstring(item)
        except ET.ParseError:
            continue
        props = {p.get("NAME"): (p.findtext("VALUE") or "") for p in root.iter("PROPERTY")}
        if props.get("Name") == "OSName":
            name = props.get("Data", "")
            return "windows" if "windows" in name.lower() else "linux"
    return None


def dashed_mac(mac: str) -> str:
    """``00155D010203`` (Get-VMNetworkAdapter) as ``00-15-5D-01-02-03`` (Get-NetNeighbor)."""
    clean = mac.replace("-", "").replace(":", "").upper()
    return "-".join(clean[i : i + 2] for i in range(0, len(clean), 2))


class HypervBackend(Backend):
    name = "hyperv"

    def __init__(self, settings: HypervVm, runner: PowerShellRunner | None = None) -> None:
        super().__init__(settings)
        self.hyperv = settings
        self._runner = runner
        self._answers: dict[str, dict[str, Any]] = {}

    @property
    def runner(self) -> PowerShellRunner:
        if self._runner is None:
            self._runner = runner_for(self.hyperv)
        return self._runner

    def host(self, secrets: SecretStore | None = None) -> Host:
        return WindowsHost(self.runner, secrets)

    def _query(self, text: str, what: str) -> Any:
        return json_result(self.runner.run(text), what)

    def _vm(self, vm: str) -> dict[str, Any]:
        answer = self._query(scripts.vm_script(vm), f"look up VM {vm!r}")
        if not answer.get("found"):
            names = [str(n) for n in answer.get("names") or []]
            close = difflib.get_close_matches(vm, names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "Get-VM lists the VMs"
            raise NotFoundError(f"VM {vm!r} not found on {self.connection}", hint=hint)
        return dict(answer)

    # -------------------------------------------------------------------- facts

    def inspect(self, vm: str) -> VmFacts:
        facts = VmFacts(
            name=vm,
            backend=self.name,
            connection=self.connection,
            find_hint="check the VM's name (Get-VM on the Hyper-V host)",
            guest_hint=GUEST_HINT.format(vm=vm),
        )
        try:
            answer = self._vm(vm)
        except NotFoundError as exc:
            return facts.model_copy(update={"find_hint": exc.hint or facts.find_hint})
        running = answer.get("state") == "Running"
        services = {s.get("Name"): bool(s.get("Enabled")) for s in answer.get("services") or []}
        detected = guest_os_of([str(i) for i in answer.get("kvp") or []])
        wanted = self.hyperv.guest.os
        guest_os: GuestOs = wanted if wanted != "auto" else (detected or "linux")
        addresses, reason = self._addresses(answer) if running else ([], None)
        tools = (
            f"generation {answer.get('generation')}, KVP "
            f"{'on' if services.get(scripts.KVP) else 'off'}, guest services "
            f"{'on' if services.get(scripts.GUEST_SERVICE) else 'off'}"
        )
        return facts.model_copy(
            update={
                "exists": True,
                "uuid": answer.get("id"),
                "running": running,
                "addresses": addresses,
                "address_reason": reason,
                "guest_tools": tools,
                "host_address": self._host_address(answer),  # known from the switch, even off
                "host_shares": WindowsHost(self.runner).export_entries("smb_share", {}),
                "capabilities": Capabilities(
                    devices=[], network=["smb"], guest_os=guest_os, host_os="windows"
                ),
            }
        )

    def _addresses(self, answer: dict[str, Any]) -> tuple[list[str], str | None]:
        nics = answer.get("nics") or []
        found = [str(a) for nic in nics for a in nic.get("IPAddresses") or [] if ":" not in a]
        if found:
            return found, "Get-VMNetworkAdapter's IPAddresses (KVP)"
        macs = [dashed_mac(str(n["MacAddress"])) for n in nics if n.get("MacAddress")]
        if not macs:
            return [], None
        rows = self._query(scripts.neighbor_script(macs), "look up the VM's address by MAC")
        found = [str(r["IPAddress"]) for r in rows if r.get("State") != "Unreachable"]
        return found, "the host's neighbour table (Get-NetNeighbor) by the VM's MAC"

    def _host_address(self, answer: dict[str, Any]) -> str | None:
        if self.hyperv.host_address:
            return self.hyperv.host_address
        switches = [str(n["SwitchName"]) for n in answer.get("nics") or [] if n.get("SwitchName")]
        for switch in switches:
            found = self._query(scripts.host_address_script(switch), f"address on {switch}")
            if found:
                return str(found[0])
        return None

    def diagnose(self, vm: str) -> list[Diagnosis]:
        """PowerShell and the Hyper-V module answer, the VM exists, its integration services."""
        try:
            about = self._query(scripts.version_script(), "ask the Hyper-V host")
        except VmshareError as exc:
            return [Diagnosis("hyperv host", "fail", exc.message, exc.hint)]
        rows = [
            Diagnosis(
                "hyperv host",
                "ok",
                f"{about.get('computer')}: {about.get('os')} {about.get('version')}",
            )
        ]
        try:
            answer = self._vm(vm)
        except VmshareError as exc:
            return [*rows, Diagnosis(f"hyperv vm {vm}", "fail", exc.message, exc.hint)]
        rows.append(
            Diagnosis(
                f"hyperv vm {vm}",
                "ok",
                f"{answer.get('state')}, generation {answer.get('generation')}",
            )
        )
        services = {s.get("Name"): bool(s.get("Enabled")) for s in answer.get("services") or []}
        if services.get(scripts.KVP):
            rows.append(Diagnosis("hyperv kvp", "ok", "Key-Value Pair Exchange is on"))
        else:
            rows.append(
                Diagnosis(
                    "hyperv kvp",
                    "warn",
                    "Key-Value Pair Exchange is off: no guest address or OS from Hyper-V",
                    f"Enable-VMIntegrationService -VMName '{vm}' -Name '{scripts.KVP}', or set "
                    f"[vm.{vm}] client_address",
                )
            )
        return rows

    def guest_channel(self, vm: VmSpec) -> GuestChannel:
        access = vm.guest
        if access.channel == "ssh" or access.ssh_host:
            return SshChannel(access)
        from vmshare.backends.hyperv.psdirect import PowerShellDirect

        return PowerShellDirect(self.runner, vm.name, access)

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
        raise HypervisorError(NO_DEVICE, hint="use --protocol auto or smb")

    def detach_share(self, *, vm: str, tag: str, scopes: list[Scope]) -> str | None:
        self._vm(vm)  # there is never a device to take away; the VM must exist
        return None

    def prepare(self, *, vm: str, prerequisite: str) -> str | None:
        raise HypervisorError(f"Hyper-V has no prerequisite {prerequisite!r} to prepare")

    def start(self, *, vm: str) -> str | None:
        """Start-VM, then wait until Hyper-V reports the guest's address (KVP) or, without
        KVP, until the VM runs."""
        self._power(vm, stop_first=False)
        return None

    def restart(self, *, vm: str) -> str | None:
        """Stop-VM (the guest shuts itself down), then start it again and wait as ``start``."""
        self._power(vm, stop_first=True)
        return None

    def _power(self, vm: str, *, stop_first: bool) -> None:
        checked(self.runner.run(scripts.power_script(vm, stop_first=stop_first)), f"start {vm!r}")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            answer = self._vm(vm)
            services = {s.get("Name"): bool(s.get("Enabled")) for s in answer.get("services") or []}
            if answer.get("state") == "Running" and (
                not services.get(scripts.KVP) or self._addresses(answer)[0]
            ):
                return
            if time.monotonic() > deadline:
                raise GuestError(
                    f"VM {vm!r} did not report a guest address within {START_TIMEOUT:g} s of "
                    "starting",
                    hint=GUEST_HINT.format(vm=vm),
                )
            time.sleep(2)


BACKEND = HypervBackend
