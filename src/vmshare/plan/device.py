"""The steps of a device share (virtiofs, 9p): host folder, hypervisor device, guest mount."""

from __future__ import annotations

from vmshare.errors import UsageError
from vmshare.facts import FsDevice, VmFacts
from vmshare.plan.share import StepMaker, VmSteps
from vmshare.protocols import DeviceProtocol
from vmshare.spec import ShareSpec


class DeviceShareSteps(StepMaker):
    """The steps one share needs on one VM, given what already exists, layer by layer."""

    def __init__(
        self,
        share: ShareSpec,
        vm: VmFacts,
        protocol: DeviceProtocol,
        explained: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(share, vm, explained)
        self.protocol = protocol

    def hypervisor(self, out: VmSteps) -> None:
        vm, protocol, tag = self.vm, self.protocol, self.tag
        device = FsDevice(
            tag=tag, source=self.source, driver=protocol.name, readonly=self.share.readonly
        )
        for existing in (vm.config_devices.get(tag), vm.live_devices.get(tag)):
            if existing is not None and existing != device:
                raise UsageError(
                    f"VM {self.share.vm!r} already has device {tag} for {self.share.target} with "
                    f"other settings ({existing.driver} from {existing.source})",
                    hint=f"run `vmshare remove {self.share.key}` first",
                )
        if protocol.needs_shared_memory and not vm.shared_memory_config:
            out.hypervisor.append(
                self.step(
                    "hypervisor",
                    "add_shared_memory",
                    "add shared memory backing to the VM config",
                    reason="virtiofs needs the guest's memory shared with virtiofsd",
                )
            )
        if vm.running and protocol.needs_shared_memory and not vm.shared_memory_live:
            out.restart_reasons.append("shared memory backing takes effect only when QEMU restarts")
        # A device the journal does not explain is attached "again" (a no-op for the backend)
        # so that the journal holds its detach.
        adopt = not self.explains("attach_filesystem")
        need_config = tag not in vm.config_devices or adopt
        need_live = vm.running and (tag not in vm.live_devices or adopt)
        hotplug = (
            protocol.hotplug
            and vm.acpi
            and (vm.shared_memory_live or not protocol.needs_shared_memory)
        )
        if need_live and tag not in vm.live_devices and not hotplug:
            if not protocol.hotplug:
                out.restart_reasons.append(f"{protocol.name} devices cannot be hot-plugged")
            elif not vm.acpi:
                out.restart_reasons.append("the VM has no ACPI, so PCI hot-plug is off")
        live_now = need_live and (hotplug or tag in vm.live_devices)
        if need_config or live_now:
            where = " and ".join(
                w for w, on in (("running VM", live_now), ("config", need_config)) if on
            )
            undo = self.step(
                "hypervisor",
                "detach_filesystem",
                f"detach device {tag}",
                tag=tag,
                live=True,
                config=True,
            )
            out.hypervisor.append(
                self.step(
                    "hypervisor",
                    "attach_filesystem",
                    f"attach {protocol.name} device {tag} for {self.source} ({where})",
                    undo,
                    tag=tag,
                    source=self.source,
                    driver=protocol.name,
                    readonly=self.share.readonly,
                    live=live_now,
                    config=need_config,
                )
            )

    def guest(self, out: VmSteps) -> None:
        options = self.protocol.mount_options(
            readonly=self.share.readonly, extra=self.share.mount_options
        )
        self.guest_mount(self.tag, self.protocol.fstype, options, ["nofail"], [], out)
