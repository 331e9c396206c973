"""The test bed's ``vboxapi``: the glue VirtualBox's SDK installs for Python, here handing out
the COM-level fake (tests/testbed/vbox/com.py) over the machine model named by
VMSHARE_VBOX_MODEL. Only on PYTHONPATH where a test puts it (VboxBed.env), so that pyvbox's own
``Manager`` code path runs, as with a real VirtualBox."""

from __future__ import annotations

from typing import Any

from tests.testbed.vbox.com import ComSession, ComVirtualBox
from tests.testbed.vbox.model import Model


class VirtualBoxManager:
    def __init__(self, style: Any = None, params: Any = None) -> None:
        self.vbox = ComVirtualBox(Model.from_env())

    def getVirtualBox(self) -> ComVirtualBox:
        return self.vbox

    def getSessionObject(self, vbox: Any = None) -> ComSession:
        return ComSession()

    def queryInterface(self, obj: Any, name: str) -> Any:
        return obj

    def getBinDir(self) -> str:
        return ""
