"""The steps of an SMB share served by a Windows host (Hyper-V): the folder, the account, the
share for that account only (the Hyper-V backend's ``explain`` shows each one's exact
PowerShell in the plan); then the guest mount as
for any SMB share (mount.cifs in Linux guests, an SMB mapping in Windows guests).

A Windows share cannot be limited to the VM's address the way a Samba or NFS export is: it is
limited to one account, with encryption required.
"""

from __future__ import annotations

from typing import Any

from vmshare.errors import UsageError
from vmshare.facts import PathFact, VmFacts
from vmshare.plan.network import Addresses, smb_guest_mount
from vmshare.plan.share import StepMaker, VmSteps
from vmshare.protocols import smb
from vmshare.spec import ShareSpec, SmbHost, VmSpec

# What the cifs client gives without POSIX extensions (as measured against Samba in
# docs/semantics.md); not measured against a Windows server here.
SEMANTICS = (
    "SMB 3.1.1 to a Windows host: chmod and chown are ignored (modes and owners come from the "
    "mount's uid/gid); no FIFOs, device nodes or sockets; names are case-insensitive; symlinks "
    "made in the guest are mfsymlinks files on the host"
)


def addresses(vm_spec: VmSpec, vm: VmFacts) -> Addresses:
    """Where the guest connects. A Windows share is not granted to an address, so the VM's own
    address is only reported (a stopped VM has none yet); the host's is needed."""
    host = vm_spec.host_address or vm.host_address or vm.guest.gateway
    if not host:
        raise UsageError(
            f"cannot find how VM {vm_spec.name!r} reaches the Windows host (no host address on "
            "its virtual switch)",
            hint=f"set [vm.{vm_spec.name}] host_address in the spec",
        )
    client = vm_spec.client_address or (vm.addresses[0] if vm.addresses else "the VM")
    return Addresses(client, host, f"the guest ({client}) dials {host}")


def account_settings(vm_spec: VmSpec) -> dict[str, Any]:
    """The account step's arguments: the account, and whether vmshare makes it (no password
    reference) or it is the user's (its password's reference, never the password)."""
    account = str(getattr(vm_spec, "smb_account", "vmshare"))
    password = getattr(vm_spec, "smb_password", None)
    if password is None:
        return {"account": account, "dedicated": True}
    return {"account": account, "dedicated": False, "password": password.model_dump()}


class WindowsHostShareSteps(StepMaker):
    def __init__(
        self,
        share: ShareSpec,
        vm_spec: VmSpec,
        vm: VmFacts,
        where: Addresses,
        explained: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(share, vm, explained)
        self.where = where
        self.settings = account_settings(vm_spec)
        owner = share.owner
        self.uid, self.gid = (owner.uid, owner.gid) if owner else (0, 0)

    def host_folder(self, path: PathFact, out: VmSteps) -> None:
        super().host_folder(path, out)

    def smb(self, out: VmSteps) -> None:
        account = self.settings["account"]
        shared = self.vm.host_shares.get(self.tag)
        if shared != self.source or not self.explains("smb_share"):
            undo = self.step(
                "host",
                "smb_account_remove",
                f"remove the local account {account} of the Windows host if vmshare made it "
                "and no share uses it any more",
                settings=self.settings,
            )
            made = "made by vmshare" if self.settings["dedicated"] else "yours, not changed"
            out.host.append(
                self.step(
                    "host",
                    "smb_account",
                    f"make sure the local account {account} exists on the Windows host "
                    f"({made}; its password is kept in vmshare's secret store)",
                    undo,
                    settings=self.settings,
                )
            )
            share = {"entry_id": self.tag, "path": self.source, "readonly": self.share.readonly}
            undo = self.step(
                "host",
                "smb_unshare",
                f"remove the SMB share {self.tag} and {account}'s rights on {self.source}",
                settings=self.settings,
                entry_id=self.tag,
                path=self.source,  # the rights go back even where the share was never made
            )
            out.host.append(
                self.step(
                    "host",
                    "smb_share",
                    f"share {self.source} over SMB as {self.tag} for {account} only "
                    f"({'read-only' if self.share.readonly else 'read/write'}, encryption "
                    "required), with NTFS rights for that account",
                    undo,
                    "a Windows share is limited to one account, not an address; "
                    + self.where.reason,
                    settings=self.settings,
                    share=share,
                )
            )
        host = SmbHost(account=account, encrypt=True)
        smb_share = smb.SmbShare(
            entry_id=self.tag,
            path=self.source,
            client=self.where.client,
            readonly=self.share.readonly,
            account=account,
            force_user="",
            force_group="",
            encrypt=True,
        )
        smb_guest_mount(self, smb_share, host, self.where.host, (self.uid, self.gid), out)
