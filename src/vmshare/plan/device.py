"""The steps of a device share (virtiofs, 9p, vboxsf, hgfs): host folder, hypervisor device,
guest mount. What the hypervisor can do (hot-plug, prerequisites) comes from the VM's
capabilities, so the same steps fit every backend."""

from __future__ import annotations

from vmshare.errors import UsageError
from vmshare.facts import DeviceCapability, FsDevice, PathFact, Scope, VmFacts
from vmshare.plan.share import StepMaker, VmSteps
from vmshare.protocols import DeviceProtocol, hgfs
from vmshare.spec import ShareSpec

ALL_SCOPES: list[Scope] = ["running", "persistent"]
SCOPE_WORDS: dict[Scope, str] = {"running": "running VM", "persistent": "config"}


class DeviceShareSteps(StepMaker):
    """The steps one share needs on one VM, given what already exists, layer by layer."""

    def __init__(
        self,
        share: ShareSpec,
        vm: VmFacts,
        protocol: DeviceProtocol,
        capability: DeviceCapability,
        explained: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(share, vm, explained)
        self.protocol, self.capability = protocol, capability
        self.owner: tuple[int, int] | None = None

    def host_folder(self, path: PathFact, out: VmSteps) -> None:
        # whose the files look in the guest, for protocols that say it in mount options (hgfs)
        owner = self.share.owner
        if owner is not None:
            self.owner = (owner.uid, owner.gid)
        elif path.exists:
            self.owner = (path.uid, path.gid)
        super().host_folder(path, out)

    def hypervisor(self, out: VmSteps) -> None:
        vm, cap, tag = self.vm, self.capability, self.tag
        device = FsDevice(
            tag=tag, source=self.source, protocol=cap.protocol, readonly=self.share.readonly
        )
        for existing in (vm.persistent_devices.get(tag), vm.running_devices.get(tag)):
            if existing is not None and existing != device:
                raise UsageError(
                    f"VM {self.share.vm!r} already has device {tag} for {self.share.target} with "
                    f"other settings ({existing.protocol} from {existing.source})",
                    hint=f"run `vmshare remove {self.share.key}` first",
                )
        for missing in cap.missing:
            put_back = (
                self.step("hypervisor", "prepare", missing.undo_summary, prerequisite=missing.undo)
                if missing.undo
                else None
            )
            out.hypervisor.append(
                self.step(
                    "hypervisor",
                    "prepare",
                    missing.summary,
                    put_back,
                    reason=missing.reason,
                    prerequisite=missing.name,
                )
            )
        # A device the journal does not explain is attached "again" (a no-op for the backend)
        # so that the journal holds its detach.
        adopt = not self.explains("attach_share")
        need_persistent = (tag not in vm.persistent_devices or adopt) and (
            self.share.persist or not (vm.running and cap.config_follows_persist)
        )
        # a config that changes only while the VM is off: the running VM is stopped for it and
        # starts with the device, so it needs no running-scope device of its own
        stopped_for_config = (
            vm.running
            and need_persistent
            and tag not in vm.persistent_devices
            and cap.config_needs_off is not None
        )
        need_running = (
            vm.running and (tag not in vm.running_devices or adopt) and not stopped_for_config
        )
        if need_running and tag not in vm.running_devices and not cap.hotplug:
            out.restart_reasons.append(cap.hotplug_off or f"{cap.protocol} cannot be hot-plugged")
        running_now = need_running and (cap.hotplug or tag in vm.running_devices)
        wanted: list[tuple[Scope, bool]] = [
            ("running", running_now),
            ("persistent", need_persistent),
        ]
        scopes = [scope for scope, on in wanted if on]
        if scopes:
            words: dict[str, str] = {**dict(SCOPE_WORDS.items()), **cap.scope_words}
            where = " and ".join(words[s] for s in scopes)
            undo = self.step(
                "hypervisor",
                "detach_share",
                f"detach device {tag}",
                tag=tag,
                scopes=ALL_SCOPES,
            )
            if cap.detach_args:
                undo = undo.model_copy(update={"args": {**undo.args, **cap.detach_args}})
            out.hypervisor.append(
                self.step(
                    "hypervisor",
                    "attach_share",
                    f"attach {cap.protocol} device {tag} for {self.source} ({where})",
                    undo,
                    self._attach_reason(scopes, stopped_for_config),
                    tag=tag,
                    source=self.source,
                    protocol=cap.protocol,
                    readonly=self.share.readonly,
                    scopes=scopes,
                )
            )

    def _attach_reason(self, scopes: list[Scope], stopped: bool) -> str | None:
        """Why these scopes, when the share's persist decides them (``stopped``: the running VM
        is stopped for its config), and the backend's note."""
        cap, parts = self.capability, []
        if cap.config_follows_persist and self.vm.running:
            words: dict[str, str] = {**dict(SCOPE_WORDS.items()), **cap.scope_words}
            if stopped:
                parts.append(
                    f"the VM runs and the share persists: {cap.config_needs_off}, so the VM is "
                    f"stopped for the {words['persistent']} and starts with it"
                )
            elif "persistent" in scopes:
                parts.append(
                    f"the VM runs and the share persists: a {words['running']} now and the "
                    f"{words['persistent']} too, so it survives power cycles"
                )
            else:
                parts.append(
                    f"the VM runs and the share does not persist: a {words['running']} only, "
                    "gone when the VM powers off"
                )
        if cap.attach_note:
            parts.append(cap.attach_note)
        return "; ".join(parts) or None

    def guest(self, out: VmSteps) -> None:
        protocol, reason = self.protocol, None
        if protocol.name == "hgfs":  # the FUSE client, or the old kernel module's
            protocol, reason = hgfs.guest_client(self.vm.guest, self.share.vm)
        source = protocol.source(self.tag)
        options = protocol.mount_options(
            readonly=self.share.readonly,
            extra=self.share.mount_options,
            source=source,
            owner=self.owner,
        )
        self.guest_mount(source, protocol.fstype, options, ["nofail"], [], out, reason=reason)
