"""Credentials: the ones vmshare generates (the SMB account's password), kept in a 0600 file in
the state dir, and references to the user's own (a hypervisor's password), resolved only when a
backend needs one. Neither is ever put on a command line, in a spec, a plan, state, output or an
exception.

A ``Secret`` prints as ``***``; ``redact`` scrubs every known secret from a text before it is
shown, as a second line of defence. A ``SecretRef`` holds no secret: only where to find it
(an environment variable, a keyring entry, or a prompt at a terminal).
"""

from __future__ import annotations

import os
import re
import secrets as _random
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator, model_validator

from vmshare.errors import BackendUnavailable, NotFoundError, StateError, UsageError
from vmshare.fsutil import atomic_write, private_dir, private_file
from vmshare.secret_value import Secret

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SecretStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / "secrets"

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise StateError(f"invalid secret name {name!r}")
        return self.directory / name

    def get_or_create(self, name: str) -> Secret:
        """The secret ``name``, generated (32 random URL-safe bytes) on first use."""
        path = self._path(name)
        private_dir(self.directory.parent)
        private_dir(self.directory)
        try:
            private_file(path)
            return Secret(path.read_text(encoding="utf-8").strip())
        except FileNotFoundError:
            pass
        value = _random.token_urlsafe(32)
        atomic_write(path, value.encode(), mode=0o600)
        return Secret(value)

    def put(self, name: str, secret: Secret) -> None:
        """Keep ``secret`` as ``name`` (a password the user gave by reference, that a guest
        needs in its credentials file)."""
        private_dir(self.directory.parent)
        private_dir(self.directory)
        atomic_write(self._path(name), secret.reveal().encode(), mode=0o600)

    def delete(self, name: str) -> None:
        """Forget the secret ``name`` (gone already is fine)."""
        self._path(name).unlink(missing_ok=True)


class SecretRef(BaseModel):
    """Where a credential comes from, never its value: exactly one of ``env = "NAME"``,
    ``keyring = "service/user"`` or ``prompt = true`` (at a terminal, never in CI)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    env: str | None = None
    keyring: str | None = None
    prompt: bool = False

    @field_validator("env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(f"env must name an environment variable (A-Z, 0-9, _), got {value!r}")
        return value

    @field_validator("keyring")
    @classmethod
    def _keyring(cls, value: str | None) -> str | None:
        if value is not None:
            service, _, user = value.rpartition("/")
            if not service or not user or _CONTROL.search(value):
                raise ValueError(f'keyring must be "service/user", got {value!r}')
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is not None) + (self.keyring is not None) + self.prompt != 1:
            raise ValueError(
                'a secret reference names exactly one of env = "NAME", '
                'keyring = "service/user" or prompt = true'
            )
        return self

    def __str__(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.keyring is not None:
            return f"keyring entry {self.keyring}"
        return "a prompt at the terminal"


NO_LITERAL_SECRETS = (
    "a password is never written into a spec (it would reach the state file): set password_env = "
    '"NAME" (an environment variable holding it), or password = { keyring = "service/user" }, '
    "or password = { prompt = true }"
)


def password_reference(value: Any) -> Any:
    """A spec's ``password`` value: a reference table passes; a literal string is refused."""
    if isinstance(value, str):
        raise ValueError(NO_LITERAL_SECRETS)
    return value


# A settings field that holds a password reference: a literal string is refused.
PasswordRef = Annotated[SecretRef, BeforeValidator(password_reference)]


def password_shorthand(data: Any, field: str = "password") -> Any:
    """``password_env = "NAME"`` is short for ``password = { env = "NAME" }`` (likewise for
    another ``field``)."""
    if isinstance(data, dict) and f"{field}_env" in data:
        data = dict(data)
        if field in data:
            raise ValueError(f"set {field}_env or {field}, not both")
        data[field] = {"env": data.pop(f"{field}_env")}
    return data


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def resolve_secret(ref: SecretRef, what: str) -> Secret:
    """The credential ``ref`` points to, for ``what`` (say "the vSphere password of u@vc");
    called only when a backend is about to use it."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            state = "is empty" if value == "" else "is not set"
            raise UsageError(
                f"{what}: environment variable {ref.env} {state}",
                hint=f"export {ref.env} before running vmshare, or use a keyring entry",
            )
        return Secret(value)
    if ref.keyring is not None:
        return Secret(_from_keyring(ref.keyring, what))
    if _in_ci() or not sys.stdin.isatty():
        why = "CI=true" if _in_ci() else "there is no terminal"
        raise UsageError(
            f"{what}: cannot prompt for it: {why}",
            hint='use password_env = "NAME" or password = { keyring = "service/user" } instead',
        )
    import getpass

    value = getpass.getpass(f"{what}: ")
    if not value:
        raise UsageError(f"{what}: nothing entered", hint="enter it at the prompt")
    return Secret(value)


def _from_keyring(entry: str, what: str) -> str:
    service, _, user = entry.rpartition("/")
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise BackendUnavailable(
            f"{what}: reading keyring entry {entry} needs the Python package 'keyring'",
            hint="pip install keyring (the vmware and hyperv extras include it)",
        ) from None
    try:
        value = keyring.get_password(service, user)
    except keyring.errors.KeyringError as exc:
        raise BackendUnavailable(
            f"{what}: the keyring could not be read: {type(exc).__name__}",
            hint="check the keyring backend (`keyring --list-backends`), or use password_env",
        ) from None
    if not value:
        raise NotFoundError(
            f"{what}: keyring entry {entry} not found",
            hint=f"store it with `keyring set {service} {user}`",
        )
    return str(value)
