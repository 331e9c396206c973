"""The one interface vmshare's VirtualBox backend drives, whatever talks to VirtualBox.

Two implementations: ``SdkAdapter`` (the Main API through pyvbox, when ``vboxapi`` from
VirtualBox's SDK is importable) and ``VBoxManageAdapter`` (``VBoxManage`` with argv lists). Both
answer the same questions and make the same changes; ``describe_*`` gives the exact calls or
commands a change makes, for the plan. ``choose_adapter`` picks one from the VM's settings and
says why (``vmshare doctor`` shows it).
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vmshare.errors import BackendUnavailable
from vmshare.guest.channel import GuestResult
from vmshare.secret_value import Secret

RUNNING_STATES = frozenset({"running", "paused", "stuck"})  # a VM process holds the machine


@dataclass(frozen=True)
class Folder:
    """A shared folder: permanent (in the VM's settings) or transient (the running VM's)."""

    name: str
    host_path: str
    writable: bool = True
    automount: bool = False
    auto_mount_point: str = ""
    transient: bool = False


@dataclass(frozen=True)
class Machine:
    """What vmshare reads about one VM. ``state`` uses VBoxManage's words (poweroff, running,
    saved, paused, aborted...)."""

    name: str
    uuid: str
    state: str
    folders: list[Folder] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)  # guest properties
    nat: bool = False  # the first network adapter is attached to NAT

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


Quote = Callable[[str], str]
shell_quote: Quote = shlex.quote
python_quote: Quote = repr


class Adapter(ABC):
    """One way to talk to VirtualBox. Errors come out as vmshare errors (``results``)."""

    name: str
    quoting: str  # how describe_* quote values: "shell" (VBoxManage) or "python" (SDK calls)
    # whether it adds and removes a permanent folder while the VM runs: the API can (the
    # session machine of a shared lock), VBoxManage cannot (it always takes the write lock)
    permanent_while_running: bool

    @abstractmethod
    def machine(self, vm: str) -> Machine | None:
        """The VM named ``vm`` (a name or UUID); None when VirtualBox knows no such VM."""

    @abstractmethod
    def names(self) -> list[str]:
        """The names of every registered VM, for close-match hints."""

    @abstractmethod
    def version(self) -> str:
        """VirtualBox's version (e.g. 7.0.14)."""

    @abstractmethod
    def extradata(self, vm: str, key: str) -> str:
        """The VM's extradata ``key`` ("" when unset)."""

    @abstractmethod
    def set_extradata(self, vm: str, key: str, value: str) -> None:
        """Set ``key`` ("" deletes it)."""

    @abstractmethod
    def add_folder(self, vm: str, folder: Folder) -> None:
        """A transient folder needs the VM running; a permanent one is saved to its settings."""

    @abstractmethod
    def remove_folder(self, vm: str, name: str, *, transient: bool) -> None:
        """Take the folder away (it must exist)."""

    @abstractmethod
    def start(self, vm: str) -> None:
        """Start the VM headless."""

    @abstractmethod
    def stop(self, vm: str, *, force: bool) -> None:
        """ACPI power button, or power off with ``force``."""

    @abstractmethod
    def guest_run(
        self,
        vm: str,
        user: str,
        password: Secret,
        argv: Sequence[str],
        stdin: bytes | None,
        timeout: float,
    ) -> GuestResult:
        """Run ``argv`` in the guest through Guest Additions guest control."""

    @abstractmethod
    def describe_add(
        self, vm: str, folder: Folder, quote: Quote = shell_quote, *, running: bool = False
    ) -> list[str]:
        """The exact calls or commands ``add_folder`` makes on a VM that runs or not, for the
        plan (``Backend.explain``); ``quote`` renders each value (each adapter's own default)."""

    @abstractmethod
    def describe_remove(
        self, vm: str, name: str, *, transient: bool, quote: Quote = shell_quote
    ) -> list[str]:
        """The exact calls or commands ``remove_folder`` makes."""

    @abstractmethod
    def describe_extradata(
        self, vm: str, key: str, value: str, quote: Quote = shell_quote
    ) -> list[str]:
        """The exact call or command ``set_extradata`` makes."""

    @abstractmethod
    def describe_power(self, vm: str, action: str, quote: Quote = shell_quote) -> list[str]:
        """The exact calls or commands of ``start``, ``stop`` (graceful, then forced after the
        backend's deadline) or ``restart`` (stop, then start)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""


def vboxapi_importable() -> bool:
    return (
        importlib.util.find_spec("virtualbox") is not None
        and importlib.util.find_spec("vboxapi") is not None
    )


def choose_adapter(wanted: str) -> tuple[str, str]:
    """(adapter name, why) for the settings' ``adapter`` (auto, sdk or vboxmanage)."""
    if wanted == "sdk":
        if not vboxapi_importable():
            raise BackendUnavailable(
                'adapter = "sdk" needs pyvbox and VirtualBox\'s own vboxapi, and one of them '
                "does not import",
                hint="pip install 'vmshare[virtualbox]' and install VirtualBox's SDK bindings "
                '(vboxapi), or set adapter = "vboxmanage"',
            )
        return "sdk", 'the VM\'s settings ask for it (adapter = "sdk")'
    if wanted == "vboxmanage":
        return "vboxmanage", 'the VM\'s settings ask for it (adapter = "vboxmanage")'
    if vboxapi_importable():
        return "sdk", "auto: pyvbox and VirtualBox's vboxapi are importable"
    if shutil.which("VBoxManage") is not None:
        return "vboxmanage", "auto: VirtualBox's vboxapi is not importable, VBoxManage is on PATH"
    raise BackendUnavailable(
        "VirtualBox is not reachable: neither its Python API (vboxapi) nor VBoxManage is found",
        hint="install VirtualBox (it brings VBoxManage), or pip install 'vmshare[virtualbox]' "
        "with VirtualBox's SDK for the API",
    )


def build_adapter(wanted: str) -> tuple[Adapter, str]:
    name, why = choose_adapter(wanted)
    if name == "sdk":
        from vmshare.backends.virtualbox.sdk import SdkAdapter

        return SdkAdapter.connect(), why
    from vmshare.backends.virtualbox.vboxmanage import VBoxManageAdapter

    return VBoxManageAdapter(), why
