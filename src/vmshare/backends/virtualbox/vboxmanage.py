"""The VBoxManage adapter: every call an argv list (``hostexec``), never a shell string.

A permanent folder (``sharedfolder add/remove`` without ``--transient``) changes only while the
VM is off: VBoxManage always takes the machine's write lock for it, which VirtualBox refuses
while the VM's process holds the machine (VirtualBox 7.0's VBoxManageMisc.cpp). Reads
``list vms``, ``showvminfo --machinereadable`` (state, UUID, NIC 1), ``showvminfo`` (the
shared folders with their flags, which the machine-readable form of 6.1 leaves out) and
``guestproperty enumerate`` (both its 6.1 and 7.x line formats). Guest programs run through
``guestcontrol VM run --passwordfile FILE``: the password sits in a 0600 temp file that is
deleted afterwards, never in argv.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence

from vmshare import hostexec
from vmshare.backends.virtualbox.adapter import (
    RUNNING_STATES,
    Adapter,
    Folder,
    Machine,
    Quote,
    shell_quote,
)
from vmshare.backends.virtualbox.results import OBJECT_NOT_FOUND, from_vboxmanage, waiting_for_lock
from vmshare.errors import GuestError, GuestTimeout, HostCommandTimeout, UsageError
from vmshare.guest.channel import GuestResult
from vmshare.secret_value import Secret

TOOL = "VBoxManage"
START_TIMEOUT = 120.0  # s: startvm returns once the VM process runs
_FOLDER = re.compile(
    r"^Name: '(?P<name>[^']*)', Host path: '(?P<path>.*)' \((?P<kind>machine|transient) mapping\)"
    r", (?P<access>writable|readonly)(?P<auto>, auto-mount)?(?:, mount-point: '(?P<point>.*)')?$"
)
_PROP_61 = re.compile(r"^Name: (?P<name>\S+), value: (?P<value>.*), timestamp: \d+, flags: .*$")
_PROP_7 = re.compile(r"^(?P<name>/\S+)\s+= '(?P<value>.*)'(?: @ .*)?$")


def vm_ref(vm: str) -> str:
    """``vm`` as VBoxManage's VM argument: a name starting with '-' would be read as an option
    (VBoxManage parses it with its other options), so it is refused; the UUID never does."""
    if not vm or vm.startswith("-"):
        raise UsageError(
            f"VBoxManage would read the VM name {vm!r} as an option",
            hint="set [vm.NAME] machine to the VM's UUID (VBoxManage list vms shows it)",
        )
    return vm


class VBoxManageAdapter(Adapter):
    name = "vboxmanage"
    quoting = "shell"
    permanent_while_running = False

    def _run(
        self,
        args: Sequence[str],
        what: str,
        *,
        timeout: float = hostexec.QUICK,
        input: bytes | None = None,
    ) -> hostexec.CommandResult:
        result = hostexec.run([TOOL, *args], input=input, check=False, timeout=timeout)
        if result.returncode != 0:
            raise from_vboxmanage(result.stderr.decode("utf-8", "replace"), what)
        return result

    # ------------------------------------------------------------------ reading

    def names(self) -> list[str]:
        text = self._run(["list", "vms"], "list the VMs").text
        return [m.group(1) for m in re.finditer(r'^"(.*)" \{[0-9a-fA-F-]+\}$', text, re.M)]

    def version(self) -> str:
        return self._run(["--version"], "report its version").text.strip()

    def machine(self, vm: str) -> Machine | None:
        proc = hostexec.run(
            [TOOL, "showvminfo", vm_ref(vm), "--machinereadable"],
            check=False,
            timeout=hostexec.QUICK,
        )
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace")
            if f"(0x{OBJECT_NOT_FOUND:08x})" in stderr.lower():
                return None
            raise from_vboxmanage(stderr, f"find VM {vm!r}")
        values = parse_machinereadable(proc.text)
        human = self._run(["showvminfo", vm_ref(vm)], f"read VM {vm!r}").text
        props = self._run(
            ["guestproperty", "enumerate", vm_ref(vm)], f"read VM {vm!r}'s properties"
        )
        return Machine(
            name=values.get("name", vm),
            uuid=values.get("UUID", ""),
            state=values.get("VMState", "poweroff"),
            folders=parse_folders(human),
            properties=parse_properties(props.text),
            nat=values.get("nic1") == "nat",
        )

    def extradata(self, vm: str, key: str) -> str:
        text = self._run(["getextradata", vm_ref(vm), key], f"read extradata of VM {vm!r}").text
        return text.strip().removeprefix("Value: ") if text.startswith("Value: ") else ""

    # ------------------------------------------------------------------ changes

    def set_extradata(self, vm: str, key: str, value: str) -> None:
        self._run(extradata_argv(vm, key, value)[1:], f"set extradata of VM {vm!r}")

    def _locking(
        self, vm: str, args: Sequence[str], what: str, timeout: float = hostexec.QUICK
    ) -> None:
        """A call that locks the machine (a permanent folder's write lock, a start): asked again
        for a while when another session holds the VM (``results.waiting_for_lock``); at once
        when the VM runs, whose own process holds it."""
        waiting_for_lock(
            lambda: self._run(args, what, timeout=timeout),
            futile=lambda: self._state(vm) in RUNNING_STATES,
        )

    def _state(self, vm: str) -> str:
        proc = hostexec.run(
            [TOOL, "showvminfo", vm_ref(vm), "--machinereadable"],
            check=False,
            timeout=hostexec.QUICK,
        )
        return parse_machinereadable(proc.text).get("VMState", "")

    def add_folder(self, vm: str, folder: Folder) -> None:
        self._locking(vm, add_argv(vm, folder)[1:], f"add shared folder {folder.name} to VM {vm!r}")

    def remove_folder(self, vm: str, name: str, *, transient: bool) -> None:
        argv = remove_argv(vm, name, transient=transient)
        self._locking(vm, argv[1:], f"remove shared folder {name} from VM {vm!r}")

    def start(self, vm: str) -> None:
        args = ["startvm", vm_ref(vm), "--type", "headless"]
        self._locking(vm, args, f"start VM {vm!r}", timeout=START_TIMEOUT)

    def stop(self, vm: str, *, force: bool) -> None:
        verb = "poweroff" if force else "acpipowerbutton"
        self._run(["controlvm", vm_ref(vm), verb], f"stop VM {vm!r}")

    def guest_run(
        self,
        vm: str,
        user: str,
        password: Secret,
        argv: Sequence[str],
        stdin: bytes | None,
        timeout: float,
    ) -> GuestResult:
        with password_file(password) as path:
            args = run_argv(vm, user, path, argv, stdin, timeout)
            try:
                # VBoxManage's own deadline comes first; ours covers a hung VBoxManage
                proc = hostexec.run(args, check=False, timeout=timeout + 15)
            except HostCommandTimeout as exc:
                raise GuestTimeout(
                    f"guest command {argv[0]} did not finish within {timeout:g} s",
                    hint="check the guest (is it overloaded or frozen?) and run it again",
                    may_still_run=True,
                ) from exc
        return GuestResult(guest_exit_code(proc, argv[0], timeout), proc.stdout, proc.stderr)

    # ------------------------------------------------------------------ plan

    def describe_add(
        self, vm: str, folder: Folder, quote: Quote = shell_quote, *, running: bool = False
    ) -> list[str]:
        return [" ".join(map(quote, add_argv(vm, folder)))]

    def describe_remove(
        self, vm: str, name: str, *, transient: bool, quote: Quote = shell_quote
    ) -> list[str]:
        return [" ".join(map(quote, remove_argv(vm, name, transient=transient)))]

    def describe_extradata(
        self, vm: str, key: str, value: str, quote: Quote = shell_quote
    ) -> list[str]:
        return [" ".join(map(quote, extradata_argv(vm, key, value)))]

    def describe_power(self, vm: str, action: str, quote: Quote = shell_quote) -> list[str]:
        stop = [
            " ".join(map(quote, [TOOL, "controlvm", vm_ref(vm), "acpipowerbutton"])),
            "# only if it is still running at the deadline:",
            " ".join(map(quote, [TOOL, "controlvm", vm_ref(vm), "poweroff"])),
        ]
        start = [" ".join(map(quote, [TOOL, "startvm", vm_ref(vm), "--type", "headless"]))]
        return {"stop": stop, "start": start, "restart": stop + start}.get(action, [])


# guestcontrol run's exit codes (VBoxManageGuestCtrl.cpp, frozen since 5.0): a guest exit code
# 1..93 comes back displaced by 32, 94 and above as 126; 16..22 say how the process ended
MAPPED_FIRST, MAPPED_BIG, DISPLACEMENT = 33, 126, 32
EXIT_TIMEOUT = 20
ENDED = {
    16: "with an exit code",
    17: "failed to start",
    18: "by a signal",
    19: "abnormally",
    21: "as the guest went down",
    22: "cancelled",
}
# stdin: `guestcontrol run` forwards none ("@todo stdin handling"), so input travels as base64
# arguments (in pieces: Linux takes at most 128 KiB in one argument) that the guest's sh joins
# and decodes into the program's stdin; the program itself is exec'd by sh from its argv (no
# shell parsing of it), because guest control wants an absolute --exe
CHUNK = 64 * 1024
RUN_SCRIPT = (
    'n=$1; shift; if [ "$n" -eq 0 ]; then exec "$@" </dev/null; fi; '
    '{ i=0; for a in "$@"; do [ "$i" -lt "$n" ] || break; printf %s "$a"; i=$((i + 1)); done; } '
    '| base64 -d | { shift "$n"; exec "$@"; }'
)


def guest_exit_code(proc: hostexec.CommandResult, program: str, timeout: float) -> int:
    """The guest program's exit code from VBoxManage's (94 stands for 94 and above); how
    VBoxManage itself failed as an error."""
    code = proc.returncode
    if code == 0:
        return 0
    if MAPPED_FIRST <= code < MAPPED_BIG:
        return code - DISPLACEMENT
    stderr = proc.stderr.decode("utf-8", "replace")
    if code == MAPPED_BIG:  # sh says 127 for a program it cannot find
        last = stderr.strip().splitlines()[-1:] or ["no message"]
        raise GuestError(
            f"guest command {program} exited with a code of 94 or more (VBoxManage maps them "
            f"all to 126): {last[0]}",
            hint="check that the program exists in the guest",
        )
    if code == EXIT_TIMEOUT:
        raise GuestTimeout(
            f"guest command {program} did not finish within {timeout:g} s; VirtualBox stopped it",
            hint="check the guest (is it overloaded or frozen?) and run it again",
            may_still_run=False,
        )
    if code in ENDED:
        raise GuestError(f"guest command {program} ended {ENDED[code]}", hint="see the guest")
    error = from_vboxmanage(stderr, f"run {program!r} in the guest")
    raise GuestError(error.message, hint=error.hint)


def add_argv(vm: str, folder: Folder) -> list[str]:
    argv = [
        TOOL,
        "sharedfolder",
        "add",
        vm_ref(vm),
        "--name",
        folder.name,
        "--hostpath",
        folder.host_path,
    ]
    if not folder.writable:
        argv.append("--readonly")
    if folder.transient:
        argv.append("--transient")
    if folder.automount:
        argv.append("--automount")
        if folder.auto_mount_point:
            argv += ["--auto-mount-point", folder.auto_mount_point]
    return argv


def remove_argv(vm: str, name: str, *, transient: bool) -> list[str]:
    return [
        TOOL,
        "sharedfolder",
        "remove",
        vm_ref(vm),
        "--name",
        name,
        *(["--transient"] * transient),
    ]


def extradata_argv(vm: str, key: str, value: str) -> list[str]:
    # without a value VBoxManage deletes the key
    return [TOOL, "setextradata", vm_ref(vm), key, *([value] if value else [])]


def run_argv(
    vm: str,
    user: str,
    passwordfile: str,
    argv: Sequence[str],
    stdin: bytes | None,
    timeout: float,
) -> list[str]:
    data = base64.b64encode(stdin).decode() if stdin else ""
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    return [
        TOOL, "guestcontrol", vm_ref(vm), "run",
        "--exe", "/bin/sh",
        "--username", user,
        "--passwordfile", passwordfile,
        "--timeout", str(max(1, int(timeout * 1000))),
        "--wait-stdout", "--wait-stderr",
        "--", "sh", "-c", RUN_SCRIPT, "sh", str(len(chunks)), *chunks, *argv,
    ]  # fmt: skip


@contextlib.contextmanager
def password_file(password: Secret) -> Iterator[str]:
    """A 0600 file holding the password, for ``--passwordfile``; deleted afterwards."""
    fd, path = tempfile.mkstemp(prefix="vmshare-vbox-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(password.reveal())
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def parse_machinereadable(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = key.strip('"')
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        values[key] = value
    return values


def parse_folders(text: str) -> list[Folder]:
    folders = []
    for line in text.splitlines():
        found = _FOLDER.match(line.strip())
        if found:
            folders.append(
                Folder(
                    name=found["name"],
                    host_path=found["path"],
                    writable=found["access"] == "writable",
                    automount=bool(found["auto"]),
                    auto_mount_point=found["point"] or "",
                    transient=found["kind"] == "transient",
                )
            )
    return folders


def parse_properties(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        found = _PROP_61.match(line) or _PROP_7.match(line)
        if found:
            props[found["name"]] = found["value"]
    return props
