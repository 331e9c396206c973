"""Checks of the plain values users write in specs: no control characters, ``${ENV}`` and ``~``
expansion, IP addresses. Shared by the spec models and every backend's settings model."""

from __future__ import annotations

import ipaddress
import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def no_control(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(
            f"{what} contains a control character (newline, tab, NUL...); "
            "rename it: such names break fstab and export files"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a name in another encoding, decoded with surrogateescape
        raise ValueError(
            f"{what} is not valid UTF-8 (a name written in another encoding); rename it: "
            "export files, smb.conf and guest commands carry UTF-8 text"
        ) from None
    return value


def expand(value: str, environ: dict[str, str] | None = None) -> str:
    """Expand ``${NAME}`` (strictly: an unset variable is an error) and a leading ``~``."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"environment variable ${{{name}}} is not set")
        return env[name]

    return os.path.expanduser(_ENV_REF.sub(sub, value))


def address(value: str | None, *, network: bool) -> str | None:
    """An IP address (or, with ``network``, a network in CIDR) in its canonical form."""
    if value is None:
        return None
    try:
        parsed = ipaddress.ip_network(value) if network else ipaddress.ip_address(value)
    except ValueError:
        kind = "an IP address or network (CIDR)" if network else "an IP address"
        raise ValueError(f"{value!r} is not {kind}") from None
    if isinstance(parsed, ipaddress.IPv4Network | ipaddress.IPv6Network):
        if parsed.prefixlen == 0:
            raise ValueError("refusing to export to every address (prefix /0)")
        if parsed.num_addresses == 1:
            return str(parsed.network_address)
    return str(parsed)
