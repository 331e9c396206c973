"""A Step: one change to one layer, with the Step that undoes it.

Steps are plain data (JSON in plans, ``--json`` output and the state journal). The executor runs a
step by calling ``action`` on the object for its layer, with ``args`` as keyword arguments; the
actions each layer offers are listed here so a plan or a journal can never name anything else.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

Layer = Literal["host", "hypervisor", "guest"]

ACTIONS: dict[str, frozenset[str]] = {
    "host": frozenset(
        {
            "mkdir",
            "rmdir_empty",
            "nfs_export",
            "nfs_unexport",
            "smb_account",
            "smb_account_remove",
            "smb_share",
            "smb_unshare",
        }
    ),
    "hypervisor": frozenset(
        {
            "attach_share",
            "detach_share",
            "prepare",
            "restart",
            "start",
            "stop",
            "record_share",
            "forget_share",
        }
    ),
    "guest": frozenset(
        {
            "mkdir",
            "rmdir_empty",
            "mount",
            "unmount",
            "probe",
            "fstab_add",
            "fstab_remove",
            "write_credentials",
            "remove_file",
        }
    ),
}

# the hypervisor actions that change a VM's power state: a run's own, never journalled as a
# share's (their undos serve only that run's rollback)
POWER = frozenset({"start", "stop", "restart"})


class Step(BaseModel):
    share: str  # the share key (VM:TARGET) this step belongs to
    layer: Layer
    action: str
    vm: str
    args: dict[str, Any] = {}
    summary: str
    reason: str | None = None
    undo: Step | None = None
    # the exact script the step runs, where a host layer can say (the Windows host of Hyper-V
    # shows its PowerShell); never holds a secret
    script: str | None = None

    def model_post_init(self, __context: Any) -> None:
        if self.action not in ACTIONS[self.layer]:
            raise ValueError(f"unknown {self.layer} action {self.action!r}")
