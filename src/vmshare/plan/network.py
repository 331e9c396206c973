"""The steps of a network share (nfs, smb): host export to the VM's address only, guest mount."""

from __future__ import annotations

from dataclasses import dataclass

from vmshare.errors import UsageError
from vmshare.facts import Facts, PathFact, VmFacts
from vmshare.plan.share import StepMaker, VmSteps
from vmshare.protocols import nfs, smb, with_extras
from vmshare.spec import HostSettings, ShareSpec, SmbHost, VmSpec


def nat_warning(what: str, client: str) -> str:
    """Why an export to a VM behind its hypervisor's NAT is wider than the VM."""
    return (
        f"{what}: the guest reaches the host from {client}, so the export is open to every "
        "local process on this host too; give the VM a network of its own to narrow it"
    )


@dataclass(frozen=True)
class HostServers:
    """The host's file servers as the settings pick them (auto-detection happens once, here)."""

    settings: HostSettings
    nfs: nfs.NfsExporter
    smb: smb.SambaExporter

    @classmethod
    def from_settings(cls, settings: HostSettings) -> HostServers:
        return cls(settings, nfs.exporter_for(settings.nfs), smb.SambaExporter(settings.smb))

    def entries(self, protocol: str) -> dict[str, str]:
        return (self.nfs if protocol == "nfs" else self.smb).entries()


@dataclass(frozen=True)
class Addresses:
    client: str  # what the host's server sees the VM connect from
    host: str  # what the guest dials
    reason: str


def addresses(vm_spec: VmSpec, vm: VmFacts) -> Addresses:
    """Where the export is granted and where the guest connects, each overridable in the spec."""
    if vm_spec.client_address:
        client, why = vm_spec.client_address, "client_address from the spec"
    elif vm.capabilities.nat is not None:
        nat = vm.capabilities.nat
        client, why = nat.client, f"{nat.what}: guest connections come from {nat.client}"
    elif vm.addresses:
        client = vm.addresses[0]
        why = "the VM's address from its guest tools"
        if vm.address_reason:
            why += f", {vm.address_reason}"
    else:
        raise UsageError(
            f"cannot find the address of VM {vm_spec.name!r} (it must run, with its guest tools)",
            hint=f"start the VM, or set [vm.{vm_spec.name}] client_address in the spec",
        )
    nat_host = vm.capabilities.nat.host if vm.capabilities.nat else None
    host = vm_spec.host_address or nat_host or vm.host_address or vm.guest.gateway
    if not host:
        raise UsageError(
            f"cannot find how VM {vm_spec.name!r} reaches the host (no default route)",
            hint=f"set [vm.{vm_spec.name}] host_address in the spec",
        )
    return Addresses(client, host, f"exported to {client} only ({why}); the guest dials {host}")


def _can_write(uid: int, gid: int, path: PathFact) -> bool:
    """Whether the squashed/forced owner may create files in the shared folder."""
    if uid == 0:
        return True
    if uid == path.uid:
        return bool(path.mode & 0o200)
    if gid == path.gid:
        return bool(path.mode & 0o020)
    return bool(path.mode & 0o002)


class NetworkShareSteps(StepMaker):
    def __init__(
        self,
        share: ShareSpec,
        vm: VmFacts,
        facts: Facts,
        servers: HostServers,
        where: Addresses,
        explained: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(share, vm, explained)
        self.facts, self.servers, self.where = facts, servers, where
        path = facts.host_paths[self.source]
        owner = share.owner
        self.uid = owner.uid if owner else path.uid
        self.gid = owner.gid if owner else path.gid
        if owner is None and self.uid == 0:  # never squash every guest user to root unasked
            what = f"{self.source} is owned by root" if path.exists else "--create makes it as root"
            raise UsageError(
                f"{what}: every guest user would write as root on the host",
                hint="pass --owner UID:GID (--owner 0:0 if you mean root), or chown the folder",
            )
        if path.exists and not share.readonly and not _can_write(self.uid, self.gid, path):
            raise UsageError(
                f"the guest's files would be written as {self.uid}:{self.gid}, which cannot write "
                f"{self.source} (owned by {path.uid}:{path.gid}, mode {path.mode:o})",
                hint="chown the folder to that owner, pass --owner with its owner, or --readonly",
            )

    def host_folder(self, path: PathFact, out: VmSteps) -> None:
        """A folder --create makes belongs to the owner the guest's files are written as."""
        super().host_folder(path, out)
        if not path.exists and self.share.owner is not None:
            out.host[-1].args["owner"] = [self.uid, self.gid]
            out.host[-1].summary += f" owned by {self.uid}:{self.gid}"

    def _exported(self, protocol: str, body: str) -> bool:
        action = "nfs_export" if protocol == "nfs" else "smb_share"
        exported = self.facts.exports.get(protocol, {}).get(self.tag) == body
        return exported and self.explains(action)

    def nfs(self, out: VmSteps) -> None:
        exporter = self.servers.nfs
        export = nfs.NfsExport(
            entry_id=self.tag,
            path=self.source,
            client=self.where.client,
            readonly=self.share.readonly,
            anonuid=self.uid,
            anongid=self.gid,
        )
        settings = self.servers.settings.nfs.model_dump(mode="json")
        if not self._exported("nfs", exporter.render(export)):
            undo = self.step(
                "host",
                "nfs_unexport",
                f"remove the NFS export of {self.source}",
                exporter=exporter.name,
                settings=settings,
                entry_id=self.tag,
            )
            out.host.append(
                self.step(
                    "host",
                    "nfs_export",
                    f"export {self.source} over NFS ({exporter.name}) to "
                    f"{self.where.client} ({'ro' if self.share.readonly else 'rw'}, "
                    f"files as {self.uid}:{self.gid})",
                    undo,
                    self.where.reason,
                    exporter=exporter.name,
                    settings=settings,
                    export=export.as_args(),
                )
            )
        source, fstype, options = nfs.guest_mount(export, exporter, self.where.host)
        options = with_extras(options, self.share.mount_options)
        fallbacks = nfs.version_fallbacks(options)
        self.guest_mount(source, fstype, options, ["_netdev", "nofail"], [], out, fallbacks)

    def smb(self, out: VmSteps) -> None:
        settings = self.servers.settings.smb
        if settings.exporter == "windows":
            raise UsageError(
                "the Windows SMB exporter serves from a Windows host, which this version does "
                "not drive yet (it comes with the Hyper-V backend)",
                hint='set [smb] exporter = "samba" (or "auto") in host.toml',
            )
        user = self.facts.user_names.get(self.uid)
        group = self.facts.group_names.get(self.gid)
        if user is None or group is None:
            raise UsageError(
                f"uid {self.uid} or gid {self.gid} has no name on this host; Samba's "
                "force user/group need names",
                hint="pass --owner with ids that exist on the host",
            )
        share = smb.SmbShare(
            entry_id=self.tag,
            path=self.source,
            client=self.where.client,
            readonly=self.share.readonly,
            account=settings.account,
            force_user=user,
            force_group=group,
            encrypt=settings.encrypt,
        )
        data = settings.model_dump(mode="json")
        if not self._exported("smb", smb.render_section(share)):
            undo = self.step(
                "host",
                "smb_account_remove",
                f"remove the Samba account {settings.account} if vmshare made it and no share "
                "uses it any more",
                settings=data,
            )
            out.host.append(
                self.step(
                    "host",
                    "smb_account",
                    f"make sure the Samba account {settings.account} exists "
                    "(password generated and kept in the state dir)",
                    undo,
                    settings=data,
                )
            )
            undo = self.step(
                "host",
                "smb_unshare",
                f"remove the Samba share of {self.source}",
                settings=data,
                entry_id=self.tag,
            )
            out.host.append(
                self.step(
                    "host",
                    "smb_share",
                    f"share {self.source} over SMB as {share.share_name} to "
                    f"{self.where.client} ({'ro' if self.share.readonly else 'rw'}, "
                    f"account {settings.account}, files as {user}:{group}, "
                    f"encryption {'required' if settings.encrypt else 'desired'})",
                    undo,
                    self.where.reason,
                    settings=data,
                    share=share.as_args(),
                )
            )
        smb_guest_mount(self, share, settings, self.where.host, (self.uid, self.gid), out)


def smb_guest_mount(
    maker: StepMaker,
    share: smb.SmbShare,
    settings: SmbHost,
    server: str,
    owner: tuple[int, int],
    out: VmSteps,
) -> None:
    """The guest's side of an SMB share, whoever serves it: the account's 0600 credentials
    file, then the mount (and its fstab line)."""
    source, fstype, options = smb.guest_mount(share, settings, server, *owner)
    options = with_extras(options, maker.share.mount_options)
    path = smb.credentials_path(maker.tag)
    undo = maker.step("guest", "remove_file", f"remove the credentials file {path}", path=path)
    credentials = maker.step(
        "guest",
        "write_credentials",
        f"write the 0600 credentials file {path}",
        undo,
        path=path,
        account=settings.account,
        secret_name=smb.secret_name(settings.account),
    )
    maker.guest_mount(source, fstype, options, ["_netdev", "nofail"], [credentials], out)
