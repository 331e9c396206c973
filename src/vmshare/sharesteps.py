"""Building blocks of a plan: the steps of one VM in layer order, and a step factory per share."""

from __future__ import annotations

from typing import Any, Literal

from vmshare.errors import UsageError
from vmshare.facts import VmFacts
from vmshare.protocols import mount_tag
from vmshare.spec import ShareSpec
from vmshare.steps import Step


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
    """Makes the steps of one share on one VM, given what already exists there."""

    def __init__(self, share: ShareSpec, vm: VmFacts) -> None:
        self.share, self.vm = share, vm
        self.tag = mount_tag(share.key)  # device tag, export and fstab entry id in one
        self.source = str(share.source)

    def step(
        self,
        layer: Literal["host", "hypervisor", "guest"],
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

    def host_folder(self, source_exists: bool, out: VmSteps) -> None:
        if not source_exists:
            path = self.source
            undo = self.step(
                "host", "rmdir_empty", f"remove host folder {path} if empty", path=path
            )
            out.host.append(
                self.step("host", "mkdir", f"create host folder {path}", undo, path=path)
            )

    def guest_mount(
        self,
        source: str,
        fstype: str,
        options: list[str],
        fstab_extra: list[str],
        before_mount: list[Step],
        out: VmSteps,
        fallbacks: list[tuple[str, list[str]]] | None = None,
    ) -> None:
        """Mount point, ``before_mount`` steps, mount, fstab entry and probe, as needed."""
        share, target = self.share, self.share.target
        mounted = self.vm.guest.mounts.get(target)
        if mounted is not None and mounted.source != source:
            raise UsageError(
                f"{target} in VM {share.vm!r} is already a mount point "
                f"({mounted.fstype} from {mounted.source})",
                hint="choose another guest path, or unmount it in the guest",
            )
        steps: list[Step] = []
        if mounted is None:
            if target not in self.vm.guest.existing_dirs:
                undo = self.step(
                    "guest", "rmdir_empty", f"remove mount point {target} if empty", path=target
                )
                steps.append(
                    self.step("guest", "mkdir", f"create mount point {target}", undo, path=target)
                )
            steps += before_mount
            undo = self.step("guest", "unmount", f"unmount {target}", target=target)
            extra: dict[str, Any] = {"fallbacks": fallbacks} if fallbacks else {}
            steps.append(
                self.step(
                    "guest",
                    "mount",
                    f"mount {source} on {target} ({','.join(options)})",
                    undo,
                    source=source,
                    target=target,
                    fstype=fstype,
                    options=options,
                    **extra,
                )
            )
        if share.persist and self.tag not in self.vm.guest.fstab_entries:
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
