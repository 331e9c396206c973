"""The cmdlets the Hyper-V host stand-in answers, each with the parameters Microsoft documents
for it (learn.microsoft.com, the cmdlet's syntax section: every parameter set, plus the common
parameters). A script naming anything else fails the test."""

from __future__ import annotations

COMMON = frozenset(
    {
        "ErrorAction",
        "WarningAction",
        "InformationAction",
        "ErrorVariable",
        "WarningVariable",
        "OutVariable",
        "OutBuffer",
        "PipelineVariable",
        "Verbose",
        "Debug",
    }
)
CIM = frozenset({"CimSession", "ThrottleLimit", "AsJob"})
HYPERV = frozenset({"ComputerName", "Credential", "CimSession"})

PARAMETERS: dict[str, frozenset[str]] = {
    "Get-VM": HYPERV | {"Name", "Id", "ClusterObject"},
    "Get-VMHost": HYPERV,
    "Start-VM": HYPERV | {"Name", "VM", "AsJob", "Passthru"},
    "Stop-VM": HYPERV | {"Name", "VM", "AsJob", "Force", "Passthru", "Save", "TurnOff"},
    "Get-VMIntegrationService": HYPERV | {"VMName", "VM", "Name", "VMSnapshot"},
    "Get-VMNetworkAdapter": HYPERV
    | {"VMName", "VM", "Name", "All", "ManagementOS", "SwitchName", "IsLegacy", "VMSnapshot"},
    "Get-CimInstance": frozenset(
        {
            "ClassName",
            "Namespace",
            "Filter",
            "Property",
            "KeyOnly",
            "Shallow",
            "Query",
            "QueryDialect",
            "ComputerName",
            "CimSession",
            "InputObject",
            "ResourceUri",
            "OperationTimeoutSec",
        }
    ),
    "Get-NetNeighbor": CIM
    | {
        "IPAddress",
        "InterfaceIndex",
        "InterfaceAlias",
        "LinkLayerAddress",
        "State",
        "AddressFamily",
        "PolicyStore",
        "IncludeAllCompartments",
        "AssociatedIPInterface",
    },
    "Get-NetIPAddress": CIM
    | {
        "IPAddress",
        "InterfaceIndex",
        "InterfaceAlias",
        "AddressFamily",
        "Type",
        "PrefixLength",
        "PrefixOrigin",
        "SuffixOrigin",
        "AddressState",
        "ValidLifetime",
        "PreferredLifetime",
        "SkipAsSource",
        "PolicyStore",
        "IncludeAllCompartments",
        "AssociatedIPInterface",
    },
    "Where-Object": frozenset(
        {
            "InputObject",
            "FilterScript",
            "Property",
            "Value",
            "EQ",
            "CEQ",
            "NE",
            "CNE",
            "GT",
            "CGT",
            "LT",
            "CLT",
            "GE",
            "CGE",
            "LE",
            "CLE",
            "Like",
            "CLike",
            "NotLike",
            "Match",
            "NotMatch",
            "Contains",
            "NotContains",
            "In",
            "NotIn",
            "Is",
            "IsNot",
            "Not",
        }
    ),
    "Select-Object": frozenset(
        {
            "InputObject",
            "Property",
            "ExcludeProperty",
            "ExpandProperty",
            "Unique",
            "Last",
            "First",
            "Skip",
            "SkipLast",
            "Wait",
            "Index",
        }
    ),
    "ConvertTo-Json": frozenset({"InputObject", "Depth", "Compress", "EnumsAsStrings", "AsArray"}),
    "ConvertFrom-Json": frozenset({"InputObject", "AsHashtable", "Depth", "NoEnumerate"}),
    "ConvertTo-SecureString": frozenset({"String", "AsPlainText", "Force", "SecureKey", "Key"}),
    "Out-Null": frozenset({"InputObject"}),
    "Write-Output": frozenset({"InputObject", "NoEnumerate"}),
    "New-Object": frozenset({"TypeName", "ArgumentList", "Property", "ComObject", "Strict"}),
    "Test-Path": frozenset(
        {
            "Path",
            "LiteralPath",
            "Filter",
            "Include",
            "Exclude",
            "PathType",
            "IsValid",
            "Credential",
            "OlderThan",
            "NewerThan",
        }
    ),
    "Get-Item": frozenset(
        {"Path", "LiteralPath", "Filter", "Include", "Exclude", "Force", "Credential", "Stream"}
    ),
    "New-Item": frozenset({"Path", "Name", "ItemType", "Value", "Force", "Credential"}),
    "Get-ChildItem": frozenset(
        {
            "Path",
            "LiteralPath",
            "Filter",
            "Include",
            "Exclude",
            "Recurse",
            "Depth",
            "Force",
            "Name",
            "Attributes",
            "Directory",
            "File",
            "Hidden",
            "ReadOnly",
            "System",
            "FollowSymlink",
        }
    ),
    "Remove-Item": frozenset(
        {"Path", "LiteralPath", "Filter", "Include", "Exclude", "Recurse", "Force", "Credential"}
    ),
    "Get-LocalUser": frozenset({"Name", "SID"}),
    "New-LocalUser": frozenset(
        {
            "Name",
            "Password",
            "NoPassword",
            "AccountExpires",
            "AccountNeverExpires",
            "Description",
            "Disabled",
            "FullName",
            "PasswordNeverExpires",
            "UserMayNotChangePassword",
        }
    ),
    "Set-LocalUser": frozenset(
        {
            "Name",
            "InputObject",
            "SID",
            "Password",
            "AccountExpires",
            "AccountNeverExpires",
            "Description",
            "FullName",
            "PasswordNeverExpires",
            "UserMayChangePassword",
        }
    ),
    "Remove-LocalUser": frozenset({"Name", "InputObject", "SID"}),
    "Get-SmbShare": CIM
    | {
        "Name",
        "ScopeName",
        "Scoped",
        "Special",
        "ContinuouslyAvailable",
        "ShareState",
        "FolderEnumerationMode",
        "CachingMode",
        "LeasingMode",
        "ConcurrentUserLimit",
        "AvailabilityType",
        "CaTimeout",
        "EncryptData",
        "IncludeHidden",
        "SmbInstance",
    },
    "New-SmbShare": CIM
    | {
        "Name",
        "Path",
        "ScopeName",
        "Temporary",
        "ContinuouslyAvailable",
        "Description",
        "ConcurrentUserLimit",
        "CATimeout",
        "FolderEnumerationMode",
        "CachingMode",
        "LeasingMode",
        "FullAccess",
        "ChangeAccess",
        "ReadAccess",
        "NoAccess",
        "SecurityDescriptor",
        "EncryptData",
        "CompressData",
    },
    "Set-SmbShare": CIM
    | {
        "Name",
        "ScopeName",
        "InputObject",
        "Description",
        "ConcurrentUserLimit",
        "CATimeout",
        "ContinuouslyAvailable",
        "FolderEnumerationMode",
        "CachingMode",
        "LeasingMode",
        "SecurityDescriptor",
        "EncryptData",
        "CompressData",
        "Force",
    },
    "Remove-SmbShare": CIM | {"Name", "ScopeName", "InputObject", "SmbInstance", "Force"},
    "Get-SmbShareAccess": CIM | {"Name", "ScopeName", "InputObject", "SmbInstance"},
    "Grant-SmbShareAccess": CIM
    | {"Name", "ScopeName", "InputObject", "SmbInstance", "AccountName", "AccessRight", "Force"},
    "Revoke-SmbShareAccess": CIM
    | {"Name", "ScopeName", "InputObject", "SmbInstance", "AccountName", "Force"},
    "Get-Acl": frozenset(
        {
            "Path",
            "LiteralPath",
            "InputObject",
            "Audit",
            "AllCentralAccessPolicy",
            "Filter",
            "Include",
            "Exclude",
        }
    ),
    "Set-Acl": frozenset(
        {
            "Path",
            "LiteralPath",
            "InputObject",
            "AclObject",
            "CentralAccessPolicy",
            "ClearCentralAccessPolicy",
            "Passthru",
            "Filter",
            "Include",
            "Exclude",
        }
    ),
    "Invoke-Command": frozenset(
        {
            "VMName",
            "VMId",
            "Credential",
            "ScriptBlock",
            "FilePath",
            "ArgumentList",
            "ConfigurationName",
            "AsJob",
            "HideComputerName",
            "JobName",
            "ThrottleLimit",
            "InputObject",
        }
    ),
}
# What the Windows guest's scripts may name (checked statically inside PowerShell Direct).
GUEST = {
    **PARAMETERS,
    "New-SmbMapping": frozenset(
        {
            "LocalPath",
            "RemotePath",
            "UserName",
            "Password",
            "Persistent",
            "SaveCredentials",
            "HomeFolder",
            "RequireIntegrity",
            "RequirePrivacy",
            "UseWriteThrough",
            "TransportType",
            "SkipCertificateCheck",
            "CompressNetworkTraffic",
            "GlobalMapping",
        }
        | CIM
    ),
    "Get-SmbMapping": CIM | {"LocalPath", "RemotePath", "UserName"},
    "Remove-SmbMapping": CIM | {"LocalPath", "RemotePath", "InputObject", "UpdateProfile", "Force"},
    "Set-Content": frozenset({"Path", "LiteralPath", "Value", "Encoding", "Force", "NoNewline"}),
    "Get-Content": frozenset({"Path", "LiteralPath", "Raw", "Encoding", "TotalCount", "Tail"}),
    "Move-Item": frozenset({"Path", "LiteralPath", "Destination", "Force", "PassThru"}),
    "Copy-Item": frozenset({"Path", "LiteralPath", "Destination", "Force", "Recurse"}),
    "New-Guid": frozenset(),
    "icacls": frozenset(),  # a native program: its /switches are arguments, not parameters
    "Get-NetRoute": CIM | {"DestinationPrefix", "InterfaceAlias", "AddressFamily", "NextHop"},
    "ConvertFrom-SecureString": frozenset({"SecureString", "SecureKey", "Key", "AsPlainText"}),
    "Join-Path": frozenset({"Path", "ChildPath", "AdditionalChildPath", "Resolve"}),
    "ForEach-Object": frozenset({"Process", "MemberName", "InputObject", "Begin", "End"}),
    "Sort-Object": frozenset({"Property", "Descending", "Unique"}),
    "Split-Path": frozenset({"Path", "LiteralPath", "Parent", "Leaf", "Qualifier"}),
}
