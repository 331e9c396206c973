"""A ``vmrun`` stand-in for the Workstation/Fusion backend's tests, installed on PATH.

It takes only vmrun's documented syntax, ``vmrun [-T ws|fusion|player] [-gu USER -gp PASSWORD]
COMMAND [PARAMETERS]``, for the commands vmshare uses, and does to the .vmx what the product does
(shared-folder keys, ``isolation.tools.hgfs.disable``; VMware's lock folder ``<vmx>.lck`` while
the VM runs), so tests assert the file's end state. Errors are printed as vmrun prints them,
``Error: ...`` on stdout; the shared-folder commands exit 0 even then, as vmshare must not trust
the exit status.

The "VMware VM" of a .vmx is a libvirt domain (the project's QEMU test guest): ``start`` and
``stop`` power it on and off, guest commands run in it through qemu-guest-agent, and a shared
folder that is on in the running VM is a virtiofs device of the same host folder hot-plugged into
the domain, with the folder's name as its tag. In the guest, the vmhgfs-fuse stand-in
(tests/testbed/vmrun/guest) mounts that device, so files cross for real.

``install(folder, vms, login)`` writes the ``vmrun`` program and its configuration (which .vmx is
which domain, the guest account) into ``folder``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

CONFIG = "vmrun-standin.json"


@dataclass(frozen=True)
class StandInVm:
    vmx: Path
    domain: str
    uri: str = "qemu:///system"


def install(folder: Path, vms: list[StandInVm], login: tuple[str, str]) -> Path:
    """Write ``folder/vmrun`` (this interpreter, this checkout) and its configuration."""
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[3]
    config = {
        "vms": {str(vm.vmx.resolve()): {"domain": vm.domain, "uri": vm.uri} for vm in vms},
        "login": {"user": login[0], "password": login[1]},
    }
    (folder / CONFIG).write_text(json.dumps(config, indent=1))
    program = folder / "vmrun"
    program.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from tests.testbed.vmrun.cli import main\n"
        "sys.exit(main(sys.argv))\n"
    )
    program.chmod(0o755)
    return program
