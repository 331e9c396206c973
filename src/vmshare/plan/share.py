"""Building blocks of a plan: the steps of one VM in layer order, and a step factory per share."""

from __future__ import annotations

from typing import Any

from vmshare.errors import UsageError
from vmshare.facts import PathFact, VmFacts, missing_parents
from vmshare.plan.step import Layer, Step
from vmshare.protocols import mount_tag
from vmshare.spec import ShareSpec


class VmSteps:
    """Collects the steps of one VM in layer order: host, hypervisor, restart, guest."""

    def __init__(self) -> None:
        self.host: list[Step] = []
        self.hypervisor: list[Step] = []
        self.guest: list[Step] = []
        self.restart_reasons: list[str] = []

    def steps(self) -> list[Step]:
        return self.host + self.hypervisor + self.guest


class StepMaker:
    """Makes the steps of one share on one VM, given what already exists there.

    ``explained`` names the actions the share's journal holds: an object that exists but that
    the journal does not explain (a crash before journalling, an older vmshare) gets its step
    anyway, so that the journal holds its undo; every action is idempotent.
    """

    def __init__(
        self, share: ShareSpec, vm: VmFacts, explained: frozenset[str] = frozenset()
    ) -> None:
        self.share, self.vm, self.explained = share, vm, explained
        self.tag = mount_tag(share.key)  # device tag, export and fstab entry id in one
        self.source = str(share.source)

    def explains(self, action: str) -> bool:
        return action in self.explained

    def step(
        self,
        layer: Layer,
        action: str,
        summary: str,
        undo: Step | None = None,
        reason: str | None = None,
        **args: object,
    ) -> Step:
        return Step(
            share=self.share.key,
            layer=layer,
            action=action,
            vm=self.share.vm,
            args=args,
            summary=summary,
            reason=reason,
            undo=undo,
        )

    def vm_record(self, protocol: str, host_name: str, created: str) -> dict[str, Any]:
        """vmshare's record of this share, kept on the VM (``Capabilities.records``): what another
        workstation needs to know whose share it is. Nothing secret, nothing that differs between
        two plans of the same share (``created`` is the journal's), so an applied share
        re-plans nothing."""
        return {
            "key": self.share.key,
            "source": self.source,
            "host": host_name,
            "protocol": protocol,
            "target": self.share.target,
            "readonly": self.share.readonly,
            "created": created,
        }

    def record_on_vm(self, protocol: str, host_name: str, created: str, out: VmSteps) -> None:
        """The hypervisor step that keeps the share's record on the VM, after the share's other
        hypervisor steps; skipped when the VM holds this record and the journal explains it."""
        caps = self.vm.capabilities
        if not caps.records:
            return
        record = self.vm_record(protocol, host_name, created)
        if self.vm.records.get(self.tag) == record and self.explains("record_share"):
            return
        vm, where = self.share.vm, caps.record_where.format(tag=self.tag)
        undo = self.step(
            "hypervisor",
            "forget_share",
            f"forget the share's record on VM {vm} ({where})",
            tag=self.tag,
        )
        out.hypervisor.append(
            self.step(
                "hypervisor",
                "record_share",
                f"record the share on VM {vm} ({where})",
                undo,
                "so that other workstations and CI jobs see which shares vmshare made in it",
                tag=self.tag,
                record=record,
            )
        )

    def host_folder(self, path: PathFact, out: VmSteps) -> None:
        if not path.exists:
            out.host.append(self._mkdir("host", "host folder", self.source, path.missing_parents))

    def _mkdir(self, layer: Layer, what: str, path: str, parents: list[str]) -> Step:
        """mkdir -p, whose undo removes the folder and the parents it made, each only if empty."""
        made = f" (and {', '.join(parents)})" if parents else ""
        undo = self.step(
            layer, "rmdir_empty", f"remove {what} {path}{made} if empty", path=path, parents=parents
        )
        return self.step(layer, "mkdir", f"create {what} {path}{made}", undo, path=path)

    def guest_mount(
        self,
        source: str,
        fstype: str,
        options: list[str],
        fstab_extra: list[str],
        before_mount: list[Step],
        out: VmSteps,
        fallbacks: list[tuple[str, list[str]]] | None = None,
        reason: str | None = None,
    ) -> None:
        """Mount point, ``before_mount`` steps, mount (``reason``: why this client), fstab entry
        and probe, as needed."""
        share, target = self.share, self.share.target
        guest = self.vm.guest
        mounted = guest.mounts.get(target)
        if mounted is not None and mounted.source != source:
            raise UsageError(
                f"{target} in VM {share.vm!r} is already a mount point "
                f"({mounted.fstype} from {mounted.source})",
                hint="choose another guest path, or unmount it in the guest",
            )
        steps: list[Step] = []
        if mounted is None or not self.explains("mount"):
            # a Windows target (X:, C:\mnt\src) is made by the mapping itself
            if mounted is None and target not in guest.existing_dirs and target.startswith("/"):
                parents = missing_parents(target, guest.existing_dirs)
                steps.append(self._mkdir("guest", "mount point", target, parents))
            steps += before_mount
            undo = self.step("guest", "unmount", f"unmount {target}", target=target)
            extra: dict[str, Any] = {"fallbacks": fallbacks} if fallbacks else {}
            steps.append(
                self.step(
                    "guest",
                    "mount",
                    f"mount {source} on {target} ({','.join(options)})",
                    undo,
                    reason,
                    source=source,
                    target=target,
                    fstype=fstype,
                    options=options,
                    **extra,
                )
            )
        if share.persist and (
            self.tag not in guest.fstab_entries or not self.explains("fstab_add")
        ):
            undo = self.step(
                "guest", "fstab_remove", f"remove {target} from /etc/fstab", entry_id=self.tag
            )
            steps.append(
                self.step(
                    "guest",
                    "fstab_add",
                    f"persist {target} in /etc/fstab",
                    undo,
                    entry_id=self.tag,
                    source=source,
                    target=target,
                    fstype=fstype,
                    options=[*options, *fstab_extra],
                    **({"follow_mount": True} if fallbacks else {}),  # type: ignore[arg-type]
                )
            )
        if steps or out.host or out.hypervisor:
            what = "read" if share.readonly else "write/read"
            steps.append(
                self.step(
                    "guest",
                    "probe",
                    f"{what} probe of {target}",
                    target=target,
                    writable=not share.readonly,
                )
            )
        out.guest.extend(steps)
