"""A Hyper-V host stand-in: ``HyperVHost.handle(script_text)`` answers vmshare's PowerShell as
a Windows host with Hyper-V would, from a model of VMs, local accounts, SMB shares and NTFS
ACLs that tests assert on. Each script is parsed with tree-sitter-powershell (a script that does
not parse fails the test) and only allow-listed cmdlets with their documented parameters run.

Folders ``C:\\...`` live under ``root`` on this machine. With ``samba`` set, New-SmbShare also
makes the share on the test bed's real Samba (Remove-SmbShare takes it away) and New-LocalUser
the account there, so the real test guest mounts what this "Windows host" shared.
"""

from __future__ import annotations

import grp
import ntpath
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.testbed.hyperv.cmdlets import GUEST, PARAMETERS
from tests.testbed.hyperv.evaluate import (
    Evaluator,
    Obj,
    PsThrow,
    Unsupported,
    equal,
    flat,
    parse,
    prop,
)
from tests.testbed.wsman.commandline import uncaught_error
from vmshare.backends.hyperv.psdirect import GUEST_BLOCK
from vmshare.errors import UsageError
from vmshare.protocols.smb import SambaExporter, SmbShare, check_path
from vmshare.secret_value import Secret
from vmshare.spec import SmbHost


@dataclass
class Vm:
    name: str
    state: str = "Running"
    generation: int = 2
    addresses: list[str] = field(default_factory=lambda: ["192.168.1.20"])
    mac: str = "00155D010203"
    switch: str = "Default Switch"
    kvp: bool = True
    os_name: str = "Debian GNU/Linux"
    id: str = "6f1b2c3d-0000-4000-8000-000000000001"


@dataclass
class Acl:
    path: str
    rules: dict[str, str] = field(default_factory=dict)  # account -> right

    def SetAccessRule(self, rule: Obj) -> None:
        self.rules[rule["account"]] = rule["right"]

    def PurgeAccessRules(self, who: Obj) -> None:
        self.rules.pop(who["Value"], None)


class _Sid:
    def __init__(self, value: str) -> None:
        self.value = value

    def Translate(self, _type: Any) -> Obj:
        if self.value != "S-1-1-0":
            raise Unsupported(f"SID {self.value}")
        return Obj(Value="Everyone")


class _Console:
    def __init__(self, ev: Evaluator) -> None:
        self.ev = ev
        self.In = self
        self.Error = self

    def ReadLine(self) -> str | None:
        return self.ev.stdin_lines.pop(0) if self.ev.stdin_lines else None

    def WriteLine(self, text: Any) -> None:
        self.ev.stderr.append(str(text))


class HyperVHost:
    def __init__(
        self,
        root: Path,
        *,
        samba: SmbHost | None = None,
        client: str = "127.0.0.1",
        interfaces: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.samba = samba
        self.client = client
        self.vms: dict[str, Vm] = {}
        self.users: dict[str, dict[str, Any]] = {}  # name -> {description, password}
        self.shares: dict[str, dict[str, Any]] = {}  # name -> {path, access: {acct: right}, ...}
        self.acls: dict[str, dict[str, str]] = {}  # folder (lower) -> {account: right}
        self.interfaces = interfaces or {"vEthernet (Default Switch)": "172.20.0.1"}
        self.neighbors: dict[str, str] = {}  # MAC (dashed) -> IPv4
        self.scripts: list[str] = []  # every script handled, in order
        self.power_log: list[tuple[str, str]] = []  # ("start"|"shutdown"|"turnoff", vm)
        # PowerShell Direct: (vm, decoded guest script, its input), the logins used, and the
        # guest's answer to a script (a test sets it)
        self.guest_scripts: list[tuple[str, str, str]] = []
        self.guest_logins: list[tuple[str, str]] = []
        self.guest_answer: Callable[[str, str, str], tuple[int, str, str]] = (
            lambda vm, script, given: (0, "", "")
        )
        # fail_next: (cmdlet, its uncaught error as powershell.exe writes it), oldest first
        self.failures: list[tuple[str, str]] = []

    def fail_next(self, cmdlet: str, message: str, category: str, error_id: str) -> None:
        """The next script that calls ``cmdlet`` fails before it changes anything, as Windows
        reports an error no script caught: exit 1, the error record on stderr in CLIXML."""
        self.failures.append((cmdlet, uncaught_error(f"{cmdlet} ...", message, category, error_id)))

    # ----------------------------------------------------------------- entry

    def handle(self, script_text: str, stdin: str = "") -> tuple[int, str, str]:
        """Answer one decoded script as the Windows host would: (exit code, stdout, stderr)."""
        self.scripts.append(script_text)
        for index, (cmdlet, error) in enumerate(self.failures):
            if re.search(rf"(?<![\w-]){re.escape(cmdlet)}(?![\w-])", script_text):
                del self.failures[index]
                return 1, "", error
        ev = Evaluator(self._cmdlets(), PARAMETERS, self._types(ev_ref := []), stdin)
        ev_ref.append(ev)
        return ev.run(script_text)

    def local(self, path: str) -> Path:
        """Where a Windows folder of the model lives on this machine."""
        drive, rest = ntpath.splitdrive(path)
        if not drive.endswith(":"):
            raise Unsupported(f"not a local Windows path: {path!r}")
        parts = [p for p in rest.split("\\") if p]
        return self.root.joinpath(drive[0].upper(), *parts)

    # ----------------------------------------------------------------- types

    def _types(self, ev_ref: list[Evaluator]) -> dict[str, Any]:
        def rule(args: list[Any]) -> Obj:
            account, right, inherit, _propagate, kind = flat(args)
            if kind != "Allow" or inherit != "ContainerInherit, ObjectInherit":
                raise Unsupported("only inherited allow rules")
            return Obj(account=account, right=right)

        return {
            "system.security.accesscontrol.filesystemaccessrule": rule,
            "system.security.principal.ntaccount": lambda a: Obj(Value=flat(a)[0] if a else None),
            "system.security.principal.securityidentifier": lambda a: _Sid(a[0]),
            "system.management.automation.pscredential": lambda a: Obj(
                UserName=flat(a)[0], secure=flat(a)[1]
            ),
            "console::in": lambda a: _Console(ev_ref[0]),
            "console::error": lambda a: _Console(ev_ref[0]),
        }

    # --------------------------------------------------------------- cmdlets

    def _cmdlets(self) -> dict[str, Any]:
        return {name: getattr(self, "_" + name.replace("-", "_").lower()) for name in PARAMETERS}

    def _vm_obj(self, vm: Vm) -> Obj:
        return Obj(Name=vm.name, Id=vm.id, State=vm.state, Generation=vm.generation, _vm=vm)

    def _get_vm(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        if "Name" in p or pos:
            raise Unsupported("vmshare filters Get-VM with Where-Object")
        return [self._vm_obj(vm) for vm in self.vms.values()]

    def _get_vmhost(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        return Obj(ComputerName="HYPERV-STANDIN")

    def _start_vm(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        vm = self._vm_of(p)
        vm.state = "Running"
        self.power_log.append(("start", vm.name))
        return []

    def _stop_vm(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        vm = self._vm_of(p)
        vm.state = "Off"
        self.power_log.append(("turnoff" if p.get("TurnOff") else "shutdown", vm.name))
        return []

    def _vm_of(self, p: dict[str, Any]) -> Vm:
        vm = p.get("VM")
        if not isinstance(vm, Obj) or "_vm" not in vm:
            raise Unsupported("-VM takes a VM object")
        return vm["_vm"]  # type: ignore[no-any-return]

    def _get_vmintegrationservice(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        vm = self._vm_of(p)
        return [
            Obj(Name="Key-Value Pair Exchange", Enabled=vm.kvp),
            Obj(Name="Guest Service Interface", Enabled=False),
            Obj(Name="Heartbeat", Enabled=True),
        ]

    def _get_vmnetworkadapter(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        vm = self._vm_of(p)
        shown = vm.addresses if vm.kvp and vm.state == "Running" else []
        return [
            Obj(Name="Network Adapter", SwitchName=vm.switch, MacAddress=vm.mac, IPAddresses=shown)
        ]

    def _get_ciminstance(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        if p.get("ClassName") == "Win32_OperatingSystem":
            return Obj(Caption="Microsoft Windows Server 2022 Datacenter", Version="10.0.20348")
        if (p.get("Namespace"), p.get("ClassName")) != (
            "root\\virtualization\\v2",
            "Msvm_KvpExchangeComponent",
        ):
            raise Unsupported(f"CIM class {p.get('ClassName')}")
        out = []
        for vm in self.vms.values():
            item = (
                '<INSTANCE CLASSNAME="Msvm_KvpExchangeDataItem"><PROPERTY NAME="Data" '
                f'TYPE="string"><VALUE>{vm.os_name}</VALUE></PROPERTY><PROPERTY NAME="Name" '
                'TYPE="string"><VALUE>OSName</VALUE></PROPERTY></INSTANCE>'
            )
            items = [item] if vm.kvp and vm.state == "Running" else []
            out.append(Obj(SystemName=vm.id.upper(), GuestIntrinsicExchangeItems=items))
        return out

    def _get_netneighbor(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        wanted = {m.upper() for m in flat(p.get("LinkLayerAddress"))}
        return [
            Obj(IPAddress=ip, LinkLayerAddress=mac, State="Reachable")
            for mac, ip in self.neighbors.items()
            if mac in wanted
        ]

    def _get_netipaddress(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        address = self.interfaces.get(str(p.get("InterfaceAlias")))
        if address is None:  # a non-terminating "not found", as the CIM cmdlets write it
            if p.get("ErrorAction") == "SilentlyContinue":
                return []
            raise PsThrow("No MSFT_NetIPAddress objects found with property 'InterfaceAlias'")
        return [Obj(IPAddress=address, InterfaceAlias=p["InterfaceAlias"])]

    def _where_object(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        if "FilterScript" in p or pos:
            raise Unsupported("vmshare uses Where-Object -Property ... -EQ -Value")
        if p.get("EQ") is True:
            return [d for d in flat(data) if equal(prop(d, p["Property"]), p.get("Value"))]
        if p.get("GT") is True:
            return [d for d in flat(data) if (prop(d, p["Property"]) or 0) > p.get("Value")]
        raise Unsupported(f"Where-Object {sorted(p)}")

    def _select_object(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        items = flat(data)
        if "First" in p:
            return items[: int(p["First"])]
        if "ExpandProperty" in p:
            return flat([prop(d, p["ExpandProperty"]) for d in items])
        if "Property" in p:
            names = flat(p["Property"])
            return [Obj({n: prop(d, n) for n in names}) for d in items]
        raise Unsupported(f"Select-Object {sorted(p)}")

    def _convertto_json(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        import json

        if p.get("Compress") is not True or "InputObject" not in p:
            raise Unsupported("vmshare prints -InputObject ... -Compress")
        return json.dumps(_plain(p["InputObject"]), ensure_ascii=False)

    def _convertfrom_json(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        import json

        text = "\n".join(str(d) for d in flat(data))
        return _objects(json.loads(text))

    def _convertto_securestring(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        if not (p.get("AsPlainText") is True and p.get("Force") is True and "String" in p):
            raise Unsupported("ConvertTo-SecureString -String -AsPlainText -Force")
        return Obj(secure=p["String"])

    def _out_null(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        return []

    def _write_output(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        return [str(v) for v in flat(pos)]

    def _new_object(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        make = self._types([])[str(p["TypeName"]).lower()]
        return make(flat([p.get("ArgumentList")]) if "ArgumentList" in p else [])

    # folders

    def _one_path(self, p: dict[str, Any]) -> str:
        if "Path" in p and "LiteralPath" not in p and p.get("ItemType") != "Directory":
            raise Unsupported("vmshare addresses files with -LiteralPath")
        return str(p.get("LiteralPath", p.get("Path")))

    def _test_path(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        where = self.local(self._one_path(p))
        if p.get("PathType") == "Container":
            return where.is_dir()
        return where.exists()

    def _get_item(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        if flat(p.get("LiteralPath")) == []:  # a binding error: terminating, whatever -ErrorAction
            raise PsThrow(
                "Cannot bind argument to parameter 'LiteralPath' because it is an empty array."
            )
        out = []
        for path in flat(p.get("LiteralPath")):
            if self.local(path).exists():
                out.append(Obj(FullName=path))
            elif p.get("ErrorAction") != "SilentlyContinue":
                raise PsThrow(f"Cannot find path '{path}' because it does not exist.")
        return out

    def _new_item(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        if p.get("ItemType") != "Directory":
            raise Unsupported("New-Item makes folders only")
        self.local(str(p["Path"])).mkdir(parents=True, exist_ok=True)
        return Obj(FullName=p["Path"])

    def _get_childitem(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        return [Obj(Name=c.name) for c in sorted(self.local(self._one_path(p)).iterdir())]

    def _remove_item(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        where = self.local(self._one_path(p))
        if where.is_dir():
            where.rmdir()  # never recursive: an empty folder only
        else:
            where.unlink()
        self.acls.pop(self._one_path(p).lower(), None)
        return []

    # accounts

    def _get_localuser(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        return [Obj(Name=n, Description=u["description"]) for n, u in self.users.items()]

    def _new_localuser(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        name = str(p["Name"])
        if name in self.users:
            raise PsThrow(f"User {name} already exists.")
        password = p["Password"]["secure"]
        self.users[name] = {"description": p.get("Description", ""), "password": password}
        if self.samba is not None:
            SambaExporter(self.samba.model_copy(update={"account": name})).ensure_account(
                Secret(password)
            )
        return Obj(Name=name)

    def _set_localuser(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        name = str(p["Name"])
        if name not in self.users:
            raise PsThrow(f"User {name} was not found.")
        if "Password" in p:
            self.users[name]["password"] = p["Password"]["secure"]
            if self.samba is not None:
                SambaExporter(self.samba.model_copy(update={"account": name})).ensure_account(
                    Secret(p["Password"]["secure"])
                )
        return []

    def _remove_localuser(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        name = str(p["Name"])
        if self.users.pop(name, None) is None:
            raise PsThrow(f"User {name} was not found.")
        if self.samba is not None:
            SambaExporter(self.samba.model_copy(update={"account": name})).remove_account(
                unix_user=True, samba_entry=True
            )
        return []

    # shares

    def _share_obj(self, name: str) -> Obj:
        share = self.shares[name]
        return Obj(Name=name, Path=share["path"], EncryptData=share["encrypt"])

    def _get_smbshare(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        if "Name" in p:
            raise Unsupported("vmshare filters Get-SmbShare with Where-Object")
        return [self._share_obj(n) for n in self.shares]

    def _new_smbshare(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        name, path = str(p["Name"]), str(p["Path"])
        if name in self.shares:
            raise PsThrow(f"The name has already been shared: {name}")
        if not self.local(path).is_dir():
            raise PsThrow(f"The system cannot find the file specified: {path}")
        access = {str(a): "Full" for a in flat(p.get("FullAccess"))}
        access.update({str(a): "Read" for a in flat(p.get("ReadAccess"))})
        if not access:  # Windows' default: Everyone may read
            access = {"Everyone": "Read"}
        self.shares[name] = {
            "path": path,
            "access": access,
            "encrypt": p.get("EncryptData") is True,
            "caching": p.get("CachingMode"),
        }
        self._sync_samba(name)
        return self._share_obj(name)

    def _set_smbshare(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        share = self.shares[str(p["Name"])]
        if "EncryptData" in p:
            share["encrypt"] = p["EncryptData"] is True
        return []

    def _remove_smbshare(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        name = str(p["Name"])
        if self.shares.pop(name, None) is None:
            raise PsThrow(f"No MSFT_SMBShare objects found with property 'Name' equal to '{name}'")
        if self.samba is not None:
            SambaExporter(self.samba).unshare(name)
            self._samba_alias(name).unlink(missing_ok=True)
        return []

    def _get_smbshareaccess(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        names = [str(p["Name"])] if "Name" in p else [str(prop(d, "Name")) for d in flat(data)]
        return [
            Obj(Name=n, AccountName=_qualified(a), AccessRight=r)
            for n in names
            for a, r in self.shares[n]["access"].items()
        ]

    def _grant_smbshareaccess(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        name = str(p["Name"])
        self.shares[name]["access"][str(p["AccountName"])] = str(p["AccessRight"])
        self._sync_samba(name)
        return []

    def _revoke_smbshareaccess(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        name = str(p["Name"])
        account = str(p["AccountName"]).rsplit("\\", 1)[-1]
        self.shares[name]["access"].pop(account, None)
        self._sync_samba(name)
        return []

    def _get_acl(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        path = self._one_path(p)
        if not self.local(path).exists():
            raise PsThrow(f"Cannot find path '{path}' because it does not exist.")
        return Acl(path, dict(self.acls.get(path.lower(), {})))

    def _set_acl(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        acl = p["AclObject"]
        self.acls[self._one_path(p).lower()] = dict(acl.rules)
        return []

    def _invoke_command(self, p: dict[str, Any], pos: list[Any], data: Any) -> Any:
        """PowerShell Direct: the block must be vmshare's guest runner (run the encoded guest
        script with the given input), the guest script must parse and name only what a Windows
        guest has; ``guest_answer(vm, script, input)`` answers for the guest."""
        vm = str(p["VMName"])
        credential = p.get("Credential")
        if vm not in self.vms or not isinstance(credential, Obj):
            raise PsThrow(f"The virtual machine {vm} was not found, or no credential")
        block = p.get("ScriptBlock")
        if block is None or block.text.decode() != GUEST_BLOCK:
            raise Unsupported("Invoke-Command runs only vmshare's guest runner block")
        check_guest_script(block.text.decode()[1:-1])
        guest, given = (str(v) for v in flat(p["ArgumentList"]))
        check_guest_script(guest)
        self.guest_scripts.append((vm, guest, str(given or "")))
        secure = credential["secure"]
        if not isinstance(secure, Obj):
            raise Unsupported("a PSCredential takes a SecureString")
        self.guest_logins.append((str(credential["UserName"]), str(secure["secure"])))
        code, out, err = self.guest_answer(vm, guest, str(given or ""))
        return Obj(code=code, out=out, err=err)

    # ---------------------------------------------------------- samba mirror

    def _sync_samba(self, name: str) -> None:
        """Mirror share ``name`` on the real Samba: only the accounts granted, read-only when
        none has more than read, never for Everyone."""
        if self.samba is None:
            return
        share = self.shares[name]
        accounts = [a for a in share["access"] if a.lower() != "everyone"]
        if not accounts:
            SambaExporter(self.samba).unshare(name)
            return
        folder = self.local(share["path"])
        info = folder.stat()
        readonly = all(share["access"][a] == "Read" for a in accounts)
        SambaExporter(self.samba).share(
            SmbShare(
                entry_id=name,
                path=self._samba_path(name, folder),
                client=self.client,
                readonly=readonly,
                account=accounts[0],
                force_user=pwd.getpwuid(info.st_uid).pw_name,
                force_group=grp.getgrgid(info.st_gid).gr_name,
                encrypt=bool(share["encrypt"]),
            )
        )

    def _samba_path(self, name: str, folder: Path) -> str:
        """The folder as smb.conf can name it: a name Windows shares as it is but smb.conf
        cannot carry (two spaces in a row, '%') goes through a symlink of the share's name."""
        alias = self._samba_alias(name)
        alias.unlink(missing_ok=True)
        try:
            check_path(str(folder))
        except UsageError:
            alias.parent.mkdir(exist_ok=True)
            alias.symlink_to(folder)
            return str(alias)
        return str(folder)

    def _samba_alias(self, name: str) -> Path:
        return self.root / ".samba" / name


def _qualified(account: str) -> str:
    return account if "\\" in account or account == "Everyone" else f"HYPERV-STANDIN\\{account}"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _objects(value: Any) -> Any:
    if isinstance(value, dict):
        return Obj({k: _objects(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_objects(v) for v in value]
    return value


def check_guest_script(text: str) -> None:
    """A guest script must parse, and name only cmdlets a Windows guest has, with their
    documented parameters."""
    root = parse(text)

    def walk(node: Any) -> None:
        if node.type == "command":
            name = node.named_children[0].text.decode()
            if name not in GUEST:
                raise Unsupported(f"guest cmdlet {name} is not on the allow-list")
            for child in node.named_children[1:]:
                for element in child.named_children:
                    if element.type == "command_parameter":
                        param = element.text.decode()[1:].rstrip(":")
                        from tests.testbed.hyperv.cmdlets import COMMON

                        allowed = {p.lower() for p in GUEST[name] | COMMON}
                        if param.lower() not in allowed:
                            raise Unsupported(f"{name} has no parameter -{param}")
        for child in node.named_children:
            walk(child)

    walk(root)


__all__ = ["HyperVHost", "Unsupported", "Vm", "check_guest_script"]
