"""The PowerShell scripts of the Hyper-V backend and its Windows host: pure functions of their
arguments, so the plan can print them and tests can parse them.

Every value comes in once, as a single-quoted literal (``assign``), and is used by name; every
query ends in one ``ConvertTo-Json`` document. Each script does one thing and stays far below
the 8,191-character command line (``ensure_fits``).
"""

from __future__ import annotations

from collections.abc import Sequence

from vmshare.formats.powershell import Var, assign, command, ensure_fits, pipeline, script

KVP = "Key-Value Pair Exchange"
GUEST_SERVICE = "Guest Service Interface"
ACCOUNT_DESCRIPTION = "vmshare: the account VMs log in as to reach their SMB shares"
# Modify, not FullControl: the account may not change the folder's permissions or owner.
NTFS_RIGHT = "Modify"
NTFS_READ = "ReadAndExecute"
# A script that takes data on stdin (a password) reads its first line into $stdin.
STDIN_LINE = "$stdin = [Console]::In.ReadLine()"


def _json(value: str, depth: int = 4) -> str:
    """Print ``value`` (code) as one compressed JSON document; -InputObject keeps an array an
    array even with one element."""
    return command("ConvertTo-Json", InputObject=Var(value), Depth=depth, Compress=True)


def _finished(*lines: str) -> str:
    text = script(*lines)
    ensure_fits(text)
    return text


def _where(source: str, prop: str, value: Var) -> str:
    # Filter rather than -Name: a missing name is an error there, and hiding it with
    # -ErrorAction would hide real failures (access denied) too.
    return pipeline(source, command("Where-Object", Property=prop, EQ=True, Value=value))


def vm_script(name: str) -> str:
    """One VM's state, generation, integration services, adapters and KVP items; the names of
    all VMs when it is not found (for close-match hints)."""
    vm = Var("vm")
    return _finished(
        assign("name", name),
        f"$vm = {_where(command('Get-VM'), 'Name', Var('name'))}",
        "if (-not $vm) {",
        "$names = @("
        + pipeline(command("Get-VM"), command("Select-Object", ExpandProperty="Name"))
        + ")",
        "$answer = @{ found = $false; names = $names }",
        "} else {",
        f"$services = @({command('Get-VMIntegrationService', VM=vm)})",
        "$nics = @("
        + pipeline(
            command("Get-VMNetworkAdapter", VM=vm),
            command("Select-Object", Property=["Name", "SwitchName", "MacAddress", "IPAddresses"]),
        )
        + ")",
        "$vmId = $vm.Id",
        "$kvp = @("
        + pipeline(
            command(
                "Get-CimInstance",
                Namespace="root\\virtualization\\v2",
                ClassName="Msvm_KvpExchangeComponent",
            ),
            command("Where-Object", Property="SystemName", EQ=True, Value=Var("vmId")),
        )
        + ")",
        "$answer = @{ found = $true; name = $vm.Name; id = $vm.Id.ToString();"
        " state = $vm.State.ToString(); generation = $vm.Generation;"
        " services = @("
        + pipeline("$services", command("Select-Object", Property=["Name", "Enabled"]))
        + ");"
        " nics = $nics; kvp = @($kvp.GuestIntrinsicExchangeItems) }",
        "}",
        _json("answer"),
    )


def power_script(name: str, *, stop_first: bool) -> str:
    """Start the VM if it is not running; with ``stop_first``, shut it down first (through the
    guest's shutdown integration service: Stop-VM without -TurnOff)."""
    lines = [
        assign("name", name),
        f"$vm = {_where(command('Get-VM'), 'Name', Var('name'))}",
        "if (-not $vm) { throw ('VM ' + $name + ' not found') }",
    ]
    if stop_first:
        lines += [
            "if ($vm.State.ToString() -eq 'Running') {",
            command("Stop-VM", VM=Var("vm"), Force=True),
            "}",
        ]
    lines += [
        "$vm = " + _where(command("Get-VM"), "Name", Var("name")),
        "if ($vm.State.ToString() -ne 'Running') {",
        command("Start-VM", VM=Var("vm")),
        "}",
    ]
    return _finished(*lines)


def neighbor_script(macs: Sequence[str]) -> str:
    """The IPv4 neighbours whose link-layer address is one of ``macs`` (``00-15-5D-..``)."""
    return _finished(
        assign("macs", list(macs)),
        "$found = @("
        + pipeline(
            command("Get-NetNeighbor", LinkLayerAddress=Var("macs"), AddressFamily="IPv4"),
            command("Select-Object", Property=["IPAddress", "State"]),
        )
        + ")",
        _json("found"),
    )


def host_address_script(switch: str) -> str:
    """The host's IPv4 addresses on the virtual switch ``switch`` (its vEthernet adapter)."""
    return _finished(
        assign("alias", f"vEthernet ({switch})"),
        "$found = @("
        + pipeline(
            # no such adapter (a private switch) is "not found", not a failure
            command(
                "Get-NetIPAddress",
                InterfaceAlias=Var("alias"),
                AddressFamily="IPv4",
                ErrorAction="SilentlyContinue",
            ),
            command("Select-Object", ExpandProperty="IPAddress"),
        )
        + ")",
        _json("found"),
    )


def version_script() -> str:
    """The host's name, OS and whether the Hyper-V module answers, for doctor."""
    return _finished(
        "$os = " + command("Get-CimInstance", ClassName="Win32_OperatingSystem"),
        "$host_ = " + command("Get-VMHost"),
        "$answer = @{ computer = $host_.ComputerName; os = $os.Caption; version = $os.Version }",
        _json("answer"),
    )


# ---------------------------------------------------------------------- the Windows host


def path_script(path: str, parents: Sequence[str]) -> str:
    """Whether ``path`` exists and is a folder, and which of ``parents`` exist."""
    # -LiteralPath refuses an empty array (a binding error, terminating): no parents, no query
    existing = (
        "@("
        + pipeline(
            command("Get-Item", LiteralPath=Var("parents"), ErrorAction="SilentlyContinue"),
            command("Select-Object", ExpandProperty="FullName"),
        )
        + ")"
        if parents
        else "@()"
    )
    return _finished(
        assign("path", path),
        assign("parents", list(parents)),
        "$answer = @{ exists = ("
        + command("Test-Path", LiteralPath=Var("path"))
        + "); folder = ("
        + command("Test-Path", LiteralPath=Var("path"), PathType="Container")
        + "); parents = "
        + existing
        + " }",
        _json("answer"),
    )


def mkdir_script(path: str) -> str:
    return _finished(
        assign("path", path),
        "if (-not (" + command("Test-Path", LiteralPath=Var("path"), PathType="Container") + ")) {",
        pipeline(command("New-Item", ItemType="Directory", Path=Var("path")), command("Out-Null")),
        "}",
    )


def rmdir_script(path: str) -> str:
    """Remove the folder only while it is empty; say which it was."""
    return _finished(
        assign("path", path),
        "$answer = 'gone'",
        "if (" + command("Test-Path", LiteralPath=Var("path"), PathType="Container") + ") {",
        "$first = @("
        + pipeline(
            command("Get-ChildItem", LiteralPath=Var("path"), Force=True),
            command("Select-Object", First=1),
        )
        + ")",
        "if ($first.Count -eq 0) {",
        command("Remove-Item", LiteralPath=Var("path")),
        "$answer = 'removed'",
        "} else { $answer = 'kept' }",
        "}",
        _json("answer"),
    )


def account_script(account: str) -> str:
    """Make or update the local account ``account``: its password is read from standard
    input, so it never is in this text, an argv or a log. Answers whether it was created."""
    return _finished(
        assign("account", account),
        assign("description", ACCOUNT_DESCRIPTION),
        STDIN_LINE,
        "$secure = "
        + command(
            "ConvertTo-SecureString",
            String=Var("stdin"),
            AsPlainText=True,
            Force=True,
        ),
        f"$user = {_where(command('Get-LocalUser'), 'Name', Var('account'))}",
        "$created = $false",
        "if ($user) {",
        "if ($user.Description -ne $description) "
        "{ throw ('local account ' + $account + ' exists and vmshare did not make it') }",
        command("Set-LocalUser", Name=Var("account"), Password=Var("secure")),
        "} else {",
        pipeline(
            command(
                "New-LocalUser",
                Name=Var("account"),
                Password=Var("secure"),
                Description=Var("description"),
                PasswordNeverExpires=True,
                UserMayNotChangePassword=True,
                AccountNeverExpires=True,
            ),
            command("Out-Null"),
        ),
        "$created = $true",
        "}",
        _json("created"),
    )


def account_query_script(account: str) -> str:
    """Whether the local account exists, whether vmshare made it (its description), and every
    account an SMB share grants something to (is the account still in use?)."""
    return _finished(
        assign("account", account),
        assign("description", ACCOUNT_DESCRIPTION),
        f"$user = {_where(command('Get-LocalUser'), 'Name', Var('account'))}",
        "$grants = @("
        + pipeline(
            command("Get-SmbShare"),
            command("Get-SmbShareAccess"),
            command("Select-Object", ExpandProperty="AccountName"),
        )
        + ")",
        "$answer = @{ exists = ($null -ne $user); mine = ($user.Description -eq $description);"
        " grants = $grants }",
        _json("answer"),
    )


def account_remove_script(account: str) -> str:
    return _finished(
        assign("account", account),
        f"if ({_where(command('Get-LocalUser'), 'Name', Var('account'))}) {{",
        command("Remove-LocalUser", Name=Var("account")),
        "}",
    )


def rights_script(path: str, account: str, readonly: bool) -> str:
    """Give ``account`` NTFS rights on the folder and everything in it (inherited)."""
    return _finished(
        assign("path", path),
        assign("account", account),
        assign("right", NTFS_READ if readonly else NTFS_RIGHT),
        assign("inherit", "ContainerInherit, ObjectInherit"),
        "$acl = " + command("Get-Acl", LiteralPath=Var("path")),
        "$ruleArgs = @($account, $right, $inherit, 'None', 'Allow')",
        "$rule = "
        + command(
            "New-Object",
            TypeName="System.Security.AccessControl.FileSystemAccessRule",
            ArgumentList=Var("ruleArgs"),
        ),
        "$acl.SetAccessRule($rule)",
        command("Set-Acl", LiteralPath=Var("path"), AclObject=Var("acl")),
    )


def unrights_script(name: str, account: str, path: str = "") -> str:
    """Take back every NTFS right ``account`` holds on the folder of share ``name``; with no
    such share, on ``path`` (the share step failed after the rights were given, or the share
    was removed by hand)."""
    return _finished(
        assign("name", name),
        assign("account", account),
        assign("folder", path),
        f"$share = {_where(command('Get-SmbShare'), 'Name', Var('name'))}",
        "if ($share) { $folder = $share.Path }",
        "if ($folder) {",
        "if (" + command("Test-Path", LiteralPath=Var("folder"), PathType="Container") + ") {",
        "$acl = " + command("Get-Acl", LiteralPath=Var("folder")),
        "$who = "
        + command(
            "New-Object",
            TypeName="System.Security.Principal.NTAccount",
            ArgumentList=Var("account"),
        ),
        "$acl.PurgeAccessRules($who)",
        command("Set-Acl", LiteralPath=Var("folder"), AclObject=Var("acl")),
        "}",
        "}",
    )


def shares_script() -> str:
    """Every SMB share: name and folder (vmshare's are told apart by their names)."""
    return _finished(
        "$found = @("
        + pipeline(command("Get-SmbShare"), command("Select-Object", Property=["Name", "Path"]))
        + ")",
        _json("found"),
    )
