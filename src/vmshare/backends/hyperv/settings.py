"""The settings of a Hyper-V VM: ``[vm.NAME] backend = "hyperv"``. Over WinRM the password is a
reference (``password_env`` or a keyring entry), never a value; ``winrms://`` certificates are
checked unless ``insecure = true``."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from vmshare.backends.settings import Tls, VmSettings, plain
from vmshare.secrets import PasswordRef, password_shorthand


class HypervVm(Tls, VmSettings):
    backend: Literal["hyperv"] = "hyperv"
    winrm: str = "local"  # "local" (PowerShell on this host), or winrm://HOST[:PORT], winrms://...
    # basic: a local account over winrms:// only (it sends the password itself)
    transport: Literal["ntlm", "kerberos", "credssp", "basic"] = "ntlm"
    user: str | None = None  # over WinRM; kerberos may use the current ticket instead
    password: PasswordRef | None = None
    host: str | None = None  # the Hyper-V host the cmdlets address (default: the WinRM host)
    # the local account of the Windows host that VMs log in as to reach their SMB shares:
    # vmshare makes it (password generated, kept in its secret store) unless smb_password names
    # the password of an account that exists already
    smb_account: str = Field(default="vmshare", pattern=r"^[a-z_][a-z0-9_-]{0,19}$")
    smb_password: PasswordRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return password_shorthand(password_shorthand(data), "smb_password")

    @field_validator("winrm")
    @classmethod
    def _winrm(cls, value: str) -> str:
        value = plain(value, "winrm") or ""
        if value == "local":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("winrm", "winrms") or not parts.hostname:
            raise ValueError(
                f'winrm must be "local", winrm://HOST[:PORT] or winrms://..., got {value!r}'
            )
        if parts.username or parts.password:
            raise ValueError("winrm may not hold a user or password: set user and password_env")
        return value

    @field_validator("user", "host")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        return plain(value, "hyperv setting")

    @model_validator(mode="after")
    def _remote(self) -> HypervVm:
        if self.winrm == "local" and (self.user or self.password):
            raise ValueError('user and password are for WinRM: set winrm = "winrms://HOST"')
        if self.password is not None and not self.user:
            raise ValueError("a password needs its user")
        if self.transport == "basic" and not self.winrm.startswith("winrms://"):
            raise ValueError(
                'transport = "basic" sends the password itself: use it only with winrms://'
            )
        return self

    def connection_key(self) -> str:
        tls = "insecure" if self.insecure else f"ca={self.ca_file or ''}"
        return f"{self.winrm}|{self.transport}|{self.user or ''}|{self.host or ''}|{tls}"

    @property
    def where(self) -> str:
        target = self.host or (urlsplit(self.winrm).hostname if self.winrm != "local" else None)
        return f"Hyper-V on {target}" if target else "Hyper-V on this host"
