"""The test bed's VirtualBox: a machine model in a temp folder, the VBoxManage stand-in on a
PATH of its own, the test bed's ``vboxapi`` for pyvbox, and adapters over them."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.testbed.vbox.model import ENV, Model

ROOT = Path(__file__).resolve().parents[3]  # the checkout: tests/ and src/ live here
SDK_PATH = Path(__file__).with_name("sdk")  # holds the test bed's vboxapi
WRAPPER = """#!/bin/sh
# vmshare's test bed: the VBoxManage stand-in (tests/testbed/vbox/vboxmanage.py)
PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -m tests.testbed.vbox.vboxmanage "$@"
"""


@dataclass
class VboxBed:
    root: Path
    model: Model = field(init=False)
    bin_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.model = Model(self.root / "machines.json")
        self.bin_dir = self.root / "bin"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        tool = self.bin_dir / "VBoxManage"
        tool.write_text(WRAPPER.format(root=ROOT, python=sys.executable))
        tool.chmod(0o755)

    @property
    def env(self) -> dict[str, str]:
        """For vmshare's CLI: the stand-in first on PATH, the model, pyvbox's vboxapi."""
        path = os.environ.get("PYTHONPATH", "")
        return {
            "PATH": f"{self.bin_dir}:{os.environ['PATH']}",
            ENV: str(self.model.path),
            "PYTHONPATH": ":".join(
                p for p in (str(SDK_PATH), str(ROOT / "src"), str(ROOT), path) if p
            ),
        }

    def adapter(self, name: str):
        """An adapter of vmshare's over this bed (the caller puts ``env`` in os.environ)."""
        if name == "sdk":
            import virtualbox

            from tests.testbed.vbox.com import ComSession, ComVirtualBox
            from vmshare.backends.virtualbox.sdk import SdkAdapter

            vbox = virtualbox.VirtualBox(interface=ComVirtualBox(self.model))
            return SdkAdapter(vbox, lambda: virtualbox.Session(interface=ComSession()))
        from vmshare.backends.virtualbox.vboxmanage import VBoxManageAdapter

        return VBoxManageAdapter()

    def freeze(self, prefix: str = "") -> None:
        """VBoxManage calls starting with ``prefix`` (all: "") hang until ``thaw``."""
        from tests.testbed.vbox.vboxmanage import FREEZE

        self.model.path.with_name(FREEZE).write_text(prefix)

    def thaw(self) -> None:
        from tests.testbed.vbox.vboxmanage import FREEZE

        self.model.path.with_name(FREEZE).unlink(missing_ok=True)

    def unplug_all(self) -> None:
        """Take every device the bridge plugged in for this bed's VMs out of their domains."""
        from tests.testbed.vbox.bridge import unplug

        if self.model.path.exists():
            for machine in self.model.read()["machines"]:
                unplug(machine)
