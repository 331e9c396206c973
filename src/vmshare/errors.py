"""The one error tree of vmshare.

Every failure the user can meet is a ``VmshareError``: a one-line message, a hint saying what to
do, and the process exit code. Only ``cli.py`` catches them and prints.

    VmshareError                    exit 1  (FAILURE)
    ├── UsageError                  exit 2  (USAGE): bad arguments
    │   └── SpecError               exit 2: a spec file or shorthand that does not validate
    ├── NotFoundError               exit 1: a VM, share or host path that does not exist
    ├── BackendUnavailable          exit 1: SDK missing or hypervisor not reachable
    ├── HostCommandError            exit 1: a host command failed
    │   ├── PrivilegeRefused        exit 1: sudo refused a command that needs root
    │   ├── HostCommandTimeout      exit 1: it did not finish within its deadline (it was killed)
    │   └── ServerNotRunning        exit 1: the file server that would read the change does not run
    ├── GuestError                  exit 1: the guest channel or a guest command failed
    │   └── GuestTimeout            exit 1: a guest command missed its deadline: it may have run
    ├── LockTimeout                 exit 1: another vmshare run holds the lock
    ├── StateError                  exit 1: the state file is unreadable or from a newer vmshare
    ├── Declined                    exit 1: the user answered no; nothing changed
    ├── Interrupted                 exit 130 (INTERRUPTED): Ctrl-C before any change
    └── ApplyFailed                 exit 3  (ROLLED_BACK): a step failed, completed steps undone
        ├── RollbackIncomplete      exit 4  (ROLLBACK_INCOMPLETE): some undo failed too
        └── FleetFailed             exit 6  (PARTIAL): some VMs failed and rolled back, others done
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum
from typing import Any, TypeVar


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The choice a typo most likely meant, if any is close."""
    found = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown(kind: str, value: object, choices: Iterable[str]) -> str:
    """ "unknown backend 'libvrt'; did you mean 'libvirt'?" (or the list when nothing is close)."""
    options = list(choices)
    guess = closest(str(value), options)
    tail = f"did you mean {guess!r}?" if guess else "choose one of: " + ", ".join(options)
    return f"unknown {kind} {str(value)!r}; {tail}"


class ExitCode(IntEnum):
    """Stable process exit codes (documented in docs/cli.md)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    ROLLED_BACK = 3
    ROLLBACK_INCOMPLETE = 4
    CHANGES_PENDING = 5  # `plan --exit-code`: the plan would change something
    PARTIAL = 6  # apply on several VMs: some failed (each rolled back), the others are done
    INTERRUPTED = 130


class VmshareError(Exception):
    exit_code: ExitCode = ExitCode.FAILURE
    # True when the failed action provably never reached its target (a connection refused, a
    # VM that refused the request): the executor then does not undo the step that raised it,
    # an undo that would meet the same refusal and leave a rollback "incomplete" for nothing
    never_ran: bool = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(VmshareError):
    exit_code = ExitCode.USAGE


class SpecError(UsageError):
    pass


class NotFoundError(VmshareError):
    pass


class BackendUnavailable(VmshareError):
    pass


class HypervisorError(VmshareError):
    """The hypervisor or its SDK failed; each backend maps its SDK's exceptions to this (or to a
    more specific vmshare error) in ``Backend.sdk_errors``."""


class HostCommandError(VmshareError):
    pass


class PrivilegeRefused(HostCommandError):
    """sudo refused a command that needs root (no rule for it): the command never ran."""


class HostCommandTimeout(HostCommandError):
    """A host command did not finish within its deadline; it was killed."""


class ServerNotRunning(HostCommandError):
    """The file server (nfs-ganesha, kernel nfsd, smbd...) that should reload a config does not
    run. Adding an entry then fails; removing one does not: nothing serves the entry, and the
    server reads the edited file when it starts."""


class GuestError(VmshareError):
    pass


class GuestTimeout(GuestError):
    """A guest command missed its deadline, so its effect is unknown: treat the step as maybe-done.

    ``may_still_run`` is True when vmshare could not stop it: the guest did not answer (a suspended
    guest, a stuck agent), so the command may run, or go on running, when the guest resumes.
    """

    maybe_done = True

    def __init__(self, message: str, hint: str | None = None, *, may_still_run: bool) -> None:
        super().__init__(message, hint)
        self.may_still_run = may_still_run


class LockTimeout(VmshareError):
    pass


class StateError(VmshareError):
    pass


class Declined(VmshareError):
    """The user answered no to a plan that removes or replaces shares; nothing changed."""


class Interrupted(VmshareError):
    """Ctrl-C came before this run changed anything."""

    exit_code = ExitCode.INTERRUPTED


class ApplyFailed(VmshareError):
    """A step failed; every completed step was undone in reverse order."""

    exit_code = ExitCode.ROLLED_BACK

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        failed_step: str = "",
        undone: list[str] | None = None,
        undo_failures: list[str] | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.failed_step = failed_step
        self.undone = undone or []
        self.undo_failures = undo_failures or []
        self.vms: list[dict[str, Any]] = []  # a fleet's result per VM (``fleet.VmResult``)


class RollbackIncomplete(ApplyFailed):
    exit_code = ExitCode.ROLLBACK_INCOMPLETE


class FleetFailed(ApplyFailed):
    """An apply on several VMs: some VMs' parts failed and were each rolled back; the others
    are done and stay so."""

    exit_code = ExitCode.PARTIAL


E = TypeVar("E", bound=VmshareError)


def never_ran(error: E) -> E:
    """``error``, marked as raised before its action reached the target (see ``never_ran``)."""
    error.never_ran = True
    return error
