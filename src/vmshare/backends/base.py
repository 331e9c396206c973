"""The interface every hypervisor backend implements.

A backend answers read-only questions (``inspect``), gives a guest channel and its VMs' host
layer (``host``), and offers the hypervisor-layer actions that plan steps name (see
``vmshare.plan.step.ACTIONS``). Actions are idempotent, and return an optional note for the user.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from vmshare.facts import VmFacts
from vmshare.guest.channel import GuestChannel
from vmshare.host import Host
from vmshare.host.local import LocalHost
from vmshare.secrets import SecretStore
from vmshare.spec import VmSpec


class Backend(ABC):
    name: ClassVar[str]
    default_connection: ClassVar[str]

    def __init__(self, connection: str | None = None) -> None:
        self.connection = connection or self.default_connection
        # VMs whose plan restarts them after its device steps: a device that leaves a running VM
        # only at a restart needs no note for them (the Session fills it in from the plan)
        self.restart_follows: set[str] = set()

    @abstractmethod
    def inspect(self, vm: str) -> VmFacts:
        """What the hypervisor knows about ``vm``; guest facts are filled in by the caller."""

    @abstractmethod
    def guest_channel(self, vm: VmSpec) -> GuestChannel:
        """The channel to run commands inside the guest, as the VM's settings ask."""

    def host(self, secrets: SecretStore | None = None) -> Host:
        """The host layer of this backend's VMs: the machine that holds the shared folders and
        runs the file servers. By default the local host vmshare runs on; a backend that drives a
        remote hypervisor host (Hyper-V over WinRM) returns one that acts there. The Session asks
        once per backend instance, and backends that keep this default share its one local host.
        """
        return LocalHost(secrets)

    @abstractmethod
    def attach_filesystem(
        self, vm: str, tag: str, source: str, driver: str, readonly: bool, live: bool, config: bool
    ) -> str | None: ...

    @abstractmethod
    def detach_filesystem(self, vm: str, tag: str, live: bool, config: bool) -> str | None: ...

    @abstractmethod
    def add_shared_memory(self, vm: str) -> str | None: ...

    @abstractmethod
    def restart(self, vm: str) -> str | None: ...

    @abstractmethod
    def start(self, vm: str) -> str | None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
