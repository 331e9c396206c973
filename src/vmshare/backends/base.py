"""The interface every hypervisor backend implements.

A backend answers read-only questions (``inspect``: the VM's facts and capabilities), gives a
guest channel and its VMs' host layer (``host``), and carries out the hypervisor verbs that plan
steps name (``vmshare.plan.step`` ACTIONS). The verbs are the same for every backend and
keyword-only, because the journal replays them by name and keyword: they are an on-disk API. Each
is idempotent and returns an optional note for the user. ``record_share``/``forget_share`` are
optional: a backend whose capabilities say ``records`` implements them; the default refuses.
Every call from vmshare into a backend runs inside ``sdk_errors()``, so no bare SDK exception
reaches the user.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from vmshare.backends.settings import VmSettings
from vmshare.errors import HypervisorError
from vmshare.facts import Scope, VmFacts
from vmshare.guest.channel import GuestChannel
from vmshare.host import Host
from vmshare.host.local import LocalHost
from vmshare.plan.power import NeedsOff
from vmshare.plan.step import Step
from vmshare.secrets import SecretStore
from vmshare.spec import VmSpec


@dataclass(frozen=True)
class Diagnosis:
    """One row of ``vmshare doctor VM`` that only the backend can check (its server's TLS,
    login, version...). ``detail`` and ``hint`` never hold a secret."""

    name: str
    status: Literal["ok", "info", "warn", "fail"]
    detail: str
    hint: str | None = None


class Backend(ABC):
    name: ClassVar[str]

    def __init__(self, settings: VmSettings) -> None:
        # the settings of the first VM that needed this backend: VMs share one backend object
        # when their settings' connection_key() is equal
        self.settings = settings
        # VMs whose plan restarts them after its device steps: a device that leaves a running VM
        # only at a restart needs no note for them (the Session fills it in from the plan)
        self.restart_follows: set[str] = set()

    @property
    def connection(self) -> str:
        """Where this backend connects, for messages (libvirt: the URI)."""
        return self.settings.where

    @abstractmethod
    def inspect(self, vm: str) -> VmFacts:
        """What the hypervisor knows about ``vm``, with the VM's capabilities; guest facts are
        filled in by the caller. Its devices and records are vmshare's own, by tag: remove and
        prune find leftovers among them (``plan.leftovers``)."""

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

    @contextmanager
    def sdk_errors(self) -> Iterator[None]:
        """Map the SDK's exceptions to vmshare's (HypervisorError, BackendUnavailable, ...)."""
        yield

    @abstractmethod
    def attach_share(
        self,
        *,
        vm: str,
        tag: str,
        source: str,
        protocol: str,
        readonly: bool,
        scopes: list[Scope],
    ) -> str | None:
        """Give the VM a ``protocol`` device named ``tag`` for the host folder ``source``, in
        each of ``scopes`` where it is not already."""

    @abstractmethod
    def detach_share(self, *, vm: str, tag: str, scopes: list[Scope]) -> str | None:
        """Take device ``tag`` away in each of ``scopes`` where it is (gone already: no-op)."""

    @abstractmethod
    def prepare(self, *, vm: str, prerequisite: str) -> str | None:
        """Add a prerequisite that the VM's capabilities listed as missing."""

    @abstractmethod
    def start(self, *, vm: str) -> str | None:
        """Start the VM and wait until its guest channel answers."""

    @abstractmethod
    def restart(self, *, vm: str) -> str | None:
        """Shut the VM down gracefully (forced after a deadline) and start it again."""

    def stop(self, *, vm: str) -> str | None:
        """Shut the VM down gracefully (forced after a deadline), for steps it must be off for;
        planned only where ``needs_off`` says so, so only such backends implement it."""
        raise HypervisorError(f"the {self.name} backend does not stop VMs for a change")

    def needs_off(self, step: Step) -> NeedsOff | None:
        """Why hypervisor ``step`` can be carried out only while its VM is off, when that VM
        runs now (None: it can run as things are). Asked of every plan's hypervisor steps before
        any runs (``plan.power.stop_around``), so the plan stops the VM around them or is
        blocked before any change."""
        return None

    def record_share(self, *, vm: str, tag: str, record: dict[str, Any]) -> str | None:
        """Keep vmshare's ``record`` of share ``tag`` on the VM itself (replacing an earlier
        one), for backends whose capabilities say ``records``; others refuse."""
        raise HypervisorError(f"the {self.name} backend keeps no record of shares on VM {vm!r}")

    def forget_share(self, *, vm: str, tag: str) -> str | None:
        """Delete the VM's record of share ``tag`` (none there: no-op)."""
        raise HypervisorError(f"the {self.name} backend keeps no record of shares on VM {vm!r}")

    def explain(self, step: Step) -> list[str]:
        """The exact commands ``step`` runs or the lines it writes, one a line, for the plan
        (its ``script``; never a secret); by default the plan shows the step's summary only."""
        return []

    def diagnose(self, vm: str) -> list[Diagnosis]:
        """The backend's own checks for ``vmshare doctor VM``, in order; a ``fail`` stops the
        doctor before it probes the VM. Never raises for what it checks: a failure is a row."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
