"""A ``VBoxManage`` stand-in: the subcommands vmshare uses, with exactly their documented
options (VirtualBox 7.0's manual; ``--opt value`` and ``--opt=value`` as RTGetOpt takes them,
options before operands), over the same machine model as the COM fake (model.py, the file named
by VMSHARE_VBOX_MODEL). Errors come out as VBoxManage prints them: ``VBoxManage: error: ...``
and ``Details: code NAME (0x...)``, exit 1; a syntax error exits 2.

``guestcontrol VM run`` runs the program in the libvirt test domain that stands for the VM (the
model's ``domain``) through its guest agent, checks the login against the model's ``logins``
(the password only from ``--passwordfile``) and returns the exit code as VBoxManage maps it
(guest 1..93 displaced by 32, 94 and above as 126); like VBoxManage it forwards no stdin.

Run as ``python -m tests.testbed.vbox.vboxmanage ARGS`` (the fixture puts a ``VBoxManage``
wrapper on PATH).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

from tests.testbed.vbox.model import (
    CODE_NAMES,
    INVALID_OBJECT_STATE,
    OBJECT_IN_USE,
    RUNNING,
    Fault,
    Model,
    check_folder,
    run_in_domain,
)

VERSION = "7.0.14r161095"
# "VM@COMMAND PREFIX": unregister VM just before running a command that starts so (a VM deleted
# in the GUI while vmshare applies)
VANISH = "VMSHARE_VBOX_VANISH"
SYNTAX = 2
# where VirtualBox 7.0.14's VBoxManageMisc.cpp locks the machine for a permanent folder
WRITE_LOCK_LINE = {"add": 1673, "remove": 1769}
# startvm's call, as VBoxManage 7.0 prints it when the machine is locked
LAUNCH_CONTEXT = (
    "LaunchVMProcess(a->session, sessionType.raw(), ComSafeArrayAsInParam(aBstrEnv), "
    "progress.asOutParam())",
    881,
)
# "the hypervisor never answers": while this file (next to the model) exists, every call whose
# arguments start with its text (all calls when it is empty) waits for VBoxSVC, which never
# answers: the caller's deadline ends it
FREEZE = "freeze"


class Syntax(Exception):
    pass


def parse(
    args: list[str], takes: dict[str, bool], operands: int | None
) -> tuple[dict[str, str | bool], list[str]]:
    """Options (``takes[name]``: whether it has a value) first, then operands; ``--`` ends the
    options. ``operands``: how many there must be (None: any number)."""
    options: dict[str, str | bool] = {}
    rest = list(args)
    while rest and rest[0].startswith("-"):
        arg = rest.pop(0)
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name not in takes:
            raise Syntax(f"Unknown option: {name}")
        if takes[name]:
            if not eq:
                if not rest:
                    raise Syntax(f"Missing the value of option {name}")
                value = rest.pop(0)
            options[name] = value
        elif eq:
            raise Syntax(f"Option {name} takes no value")
        else:
            options[name] = True
    if operands is not None and len(rest) != operands:
        raise Syntax(f"Expected {operands} operand(s), got {len(rest)}: {rest}")
    return options, rest


def fail(
    fault: Fault,
    component: str = "SessionMachine",
    interface: str = "IMachine",
    context: tuple[str, int] | None = None,
) -> NoReturn:
    """Print ``fault`` as VBoxManage does and exit 1; ``context``: the failed call's source
    text and its line in VBoxManageMisc.cpp (CHECK_ERROR2I_RET prints them)."""
    name = CODE_NAMES.get(fault.hresult, "E_FAIL")
    print(f"VBoxManage: error: {fault.msg}", file=sys.stderr)
    print(
        f"VBoxManage: error: Details: code {name} (0x{fault.hresult:08x}), component "
        f"{component}, interface {interface}, callee nsISupports",
        file=sys.stderr,
    )
    if context is not None:
        call, line = context
        print(
            f'VBoxManage: error: Context: "{call}" at line {line} of file VBoxManageMisc.cpp',
            file=sys.stderr,
        )
    raise SystemExit(1)


# ------------------------------------------------------------------------- commands


def list_vms(model: Model, args: list[str]) -> None:
    if args != ["vms"]:
        raise Syntax(f"this stand-in lists only vms, not {args}")
    for machine in model.read()["machines"]:
        print(f'"{machine["name"]}" {{{machine["uuid"]}}}')


def showvminfo(model: Model, args: list[str]) -> None:
    if args and not args[0].startswith("-"):
        args = [*args[1:], args[0]]  # VBoxManage takes the VM first: move it behind the options
    options, (ref,) = parse(args, {"--machinereadable": False, "--details": False}, 1)
    machine = model.machine(ref)
    if options.get("--machinereadable"):
        print(f'name="{machine["name"]}"')
        print(f'UUID="{machine["uuid"]}"')
        print(f'VMState="{machine["state"]}"')
        print(f'nic1="{machine["nic1"]}"')
        for kind, folders in (("Machine", machine["folders"]), ("Transient", machine["transient"])):
            for n, folder in enumerate(folders, 1):
                print(f'SharedFolderName{kind}Mapping{n}="{folder["name"]}"')
                print(f'SharedFolderPath{kind}Mapping{n}="{folder["hostPath"]}"')
        return
    print(f"Name:                        {machine['name']}")
    print(f"UUID:                        {machine['uuid']}")
    print(f"State:                       {machine['state']}")
    print("\nShared folders:\n")
    for kind, folders in (("machine", machine["folders"]), ("transient", machine["transient"])):
        for folder in folders:
            line = f"Name: '{folder['name']}', Host path: '{folder['hostPath']}' ({kind} mapping)"
            line += ", writable" if folder["writable"] else ", readonly"
            if folder["autoMount"]:
                line += ", auto-mount"
            if folder["autoMountPoint"]:
                line += f", mount-point: '{folder['autoMountPoint']}'"
            print(line)


def getextradata(model: Model, args: list[str]) -> None:
    _, (ref, key) = parse(args, {}, 2)
    value = model.machine(ref)["extradata"].get(key)
    print(f"Value: {value}" if value is not None else "No value set!")


def setextradata(model: Model, args: list[str]) -> None:
    _, rest = parse(args, {}, None)
    if len(rest) not in (2, 3):
        raise Syntax("setextradata takes <uuid|vmname|global> <keyword> [<value>]")
    model.set_extradata(rest[0], rest[1], rest[2] if len(rest) == 3 else "")


def guestproperty(model: Model, args: list[str]) -> None:
    if not args or args[0] != "enumerate":
        raise Syntax(f"this stand-in answers only guestproperty enumerate, not {args[:1]}")
    rest = args[1:]
    if rest and not rest[0].startswith("-"):
        rest = [*rest[1:], rest[0]]
    flags = {o: False for o in ("--no-timestamp", "--no-flags", "--relative", "--old-format")}
    options, operands = parse(rest, flags, None)
    if not operands:
        raise Syntax("guestproperty enumerate needs a VM")
    ref, patterns = operands[-1], operands[:-1]
    if patterns:
        raise Syntax("this stand-in takes no patterns")
    for name, value in sorted(model.machine(ref)["properties"].items()):
        if options.get("--old-format"):
            print(f"Name: {name}, value: {value}, timestamp: 1700000000000000000, flags: ")
        else:
            print(f"{name:<40} = '{value}' @ 2023-11-14T22:13:20.000000000Z")


def sharedfolder(model: Model, args: list[str]) -> None:
    if not args or args[0] not in ("add", "remove"):
        raise Syntax("sharedfolder takes add or remove")
    verb, rest = args[0], args[1:]
    if not rest or rest[0].startswith("-"):
        raise Syntax(f"sharedfolder {verb} needs the VM first")
    ref, rest = rest[0], rest[1:]
    if verb == "add":
        takes = {
            "--name": True,
            "--hostpath": True,
            "--readonly": False,
            "--transient": False,
            "--automount": False,
            "--auto-mount-point": True,
        }
    else:
        takes = {"--name": True, "--transient": False}
    options, _ = parse(rest, takes, 0)
    if "--name" not in options or (verb == "add" and "--hostpath" not in options):
        raise Syntax(f"sharedfolder {verb} needs --name" + (" and --hostpath" * (verb == "add")))
    name = str(options["--name"])
    machine = model.machine(ref)
    session = "vboxmanage"
    if options.get("--transient"):
        model.lock(ref, session, "shared")
        try:
            if verb == "add":
                folder = {
                    "name": name,
                    "hostPath": str(options["--hostpath"]),
                    "writable": not options.get("--readonly"),
                    "autoMount": bool(options.get("--automount")),
                    "autoMountPoint": str(options.get("--auto-mount-point", "")),
                }
                model.add_transient(ref, session, folder)
            else:
                model.remove_transient(ref, session, name)
        finally:
            model.unlock(ref, session)
        return
    # a permanent folder: the session's machine under the write lock, saved. VBoxManage takes
    # LockType_Write whether or not the VM runs (VirtualBox 7.0.14's VBoxManageMisc.cpp,
    # handleSharedFolderAdd/Remove), and a running VM's process holds its session, so VirtualBox
    # refuses that lock: a permanent folder changes only while the VM is off
    try:
        model.lock(ref, session, "write")
    except Fault as exc:
        line = WRITE_LOCK_LINE[verb]
        fail(exc, "MachineWrap", "IMachine", ("LockMachine(a->session, LockType_Write)", line))
    try:
        folders = [dict(f) for f in machine["folders"]]
        if verb == "add":
            folder = {
                "name": name,
                "hostPath": str(options["--hostpath"]),
                "writable": not options.get("--readonly"),
                "autoMount": bool(options.get("--automount")),
                "autoMountPoint": str(options.get("--auto-mount-point", "")),
            }
            check_folder(folder, folders, OBJECT_IN_USE)
            folders.append(folder)
        else:
            found = [f for f in folders if f["name"] == name]
            if not found:
                raise Fault(0x80BB0001, f"Could not find a shared folder named '{name}'.")
            folders.remove(found[0])
        model.save_folders(ref, session, folders)
    finally:
        model.unlock(ref, session)


def startvm(model: Model, args: list[str]) -> None:
    if args and not args[0].startswith("-"):
        args = [*args[1:], args[0]]
    options, (ref,) = parse(args, {"--type": True}, 1)
    if options.get("--type", "gui") not in ("gui", "headless", "sdl", "separate"):
        raise Syntax(f"Invalid session type '{options['--type']}'")
    try:
        model.start(ref)
    except Fault as exc:
        if exc.hresult != INVALID_OBJECT_STATE:
            raise
        fail(exc, "MachineWrap", "IMachine", LAUNCH_CONTEXT)
    print(f'VM "{ref}" has been successfully started.')


def controlvm(model: Model, args: list[str]) -> None:
    if len(args) != 2 or args[1] not in ("acpipowerbutton", "poweroff"):
        raise Syntax("this stand-in's controlvm takes acpipowerbutton or poweroff")
    model.stop(args[0])


def guestcontrol(model: Model, args: list[str]) -> None:
    if len(args) < 2 or args[1] != "run":
        raise Syntax("this stand-in's guestcontrol takes <vm> run")
    ref = args[0]
    takes = {
        "--username": True,
        "--passwordfile": True,
        "--password": True,
        "--domain": True,
        "--verbose": False,
        "--quiet": False,
        "--putenv": True,
        "--exe": True,
        "--arg0": True,
        "--ignore-orphaned-processes": False,
        "--unicode2dos": False,
        "--timeout": True,
        "--unquoted-args": False,
        "--profile": False,
        "--dos2unix": False,
        "--unix2dos": False,
        "--no-wait-stdout": False,
        "--wait-stdout": False,
        "--no-wait-stderr": False,
        "--wait-stderr": False,
    }
    options, argv = parse(args[2:], takes, None)
    exe = str(options.get("--exe") or (argv[0] if argv else ""))
    if not exe:
        raise Syntax("No executable specified!")
    if "--password" in options:
        raise Syntax("vmshare never passes --password: the password would show in argv")
    machine = model.machine(ref)
    user = str(options.get("--username", ""))
    with open(str(options.get("--passwordfile", "/dev/null"))) as handle:
        password = handle.readline().rstrip("\n")
    if machine["state"] not in RUNNING:
        fail(
            Fault(0x80BB0002, f'Machine "{machine["name"]}" is not running'), "Console", "IConsole"
        )
    if machine.get("logins", {}).get(user) != password or not machine.get("domain"):
        print(
            "VBoxManage: error: The guest execution service is not ready (yet), or the "
            f"specified user '{user}' was not able to log on",
            file=sys.stderr,
        )
        raise SystemExit(1)
    timeout = int(str(options.get("--timeout", "0"))) / 1000 or 600.0
    code, out, err = run_in_domain(str(machine["domain"]), [exe, *argv[1:]], timeout)
    if options.get("--wait-stdout", True) and not options.get("--no-wait-stdout"):
        sys.stdout.buffer.write(out)
    if options.get("--wait-stderr", True) and not options.get("--no-wait-stderr"):
        sys.stderr.buffer.write(err)
    sys.stdout.flush()
    sys.stderr.flush()
    if code is None:
        raise SystemExit(20)  # EXITCODEEXEC_TIMEOUT
    if code < 0:
        raise SystemExit(18)  # EXITCODEEXEC_TERM_SIGNAL
    raise SystemExit(0 if code == 0 else code + 32 if code <= 93 else 126)


COMMANDS: dict[str, Callable[[Model, list[str]], None]] = {
    "list": list_vms,
    "showvminfo": showvminfo,
    "getextradata": getextradata,
    "setextradata": setextradata,
    "guestproperty": guestproperty,
    "sharedfolder": sharedfolder,
    "startvm": startvm,
    "controlvm": controlvm,
    "guestcontrol": guestcontrol,
}


def frozen(model: Model, argv: list[str]) -> bool:
    try:
        prefix = model.path.with_name(FREEZE).read_text()
    except FileNotFoundError:
        return False
    return " ".join(argv).startswith(prefix)


def main(argv: list[str]) -> Any:
    if argv == ["--version"]:
        print(VERSION)
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(f"VBoxManage: error: Invalid command '{argv[0] if argv else ''}'", file=sys.stderr)
        return SYNTAX
    model = Model.from_env()
    while frozen(model, argv):
        time.sleep(0.2)
    vanish = os.environ.get(VANISH, "")  # fault injection: the VM is deleted at this command
    if vanish and " ".join(argv).startswith(vanish.partition("@")[2]):
        with contextlib.suppress(Fault):
            model.unregister(vanish.partition("@")[0])
    try:
        COMMANDS[argv[0]](model, argv[1:])
    except Syntax as exc:
        print(f"VBoxManage: error: {exc}", file=sys.stderr)
        return SYNTAX
    except Fault as exc:
        fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
