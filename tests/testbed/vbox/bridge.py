"""Makes the test bed's VirtualBox folders real: each folder active in a running "VirtualBox
VM" (its permanent folders and transient ones) is a virtiofs device of the same host folder
hot-plugged into the libvirt test domain that stands for the VM, tagged with the folder's name;
the guest's mount.vboxsf stand-in mounts that tag. Folders that leave are unplugged (the guest
has unmounted them first, as vmshare's removal does).

A VM that stops keeps its devices: the domain that stands for it goes on running, and its guest
may still have them mounted; the next sync of the running VM sets them right.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

URI = "qemu:///system"


def sync(machine: dict[str, Any]) -> None:
    import libvirt

    from tests.testbed.domain import filesystem_element
    from tests.testbed.vbox.model import RUNNING, live_folders

    if machine["state"] not in RUNNING:
        return
    live = live_folders(machine)
    bridged: dict[str, str] = machine.setdefault("bridged", {})
    conn = libvirt.open(URI)
    try:
        dom = conn.lookupByName(machine["domain"])
        for name, source in list(bridged.items()):
            if name not in live or live[name]["hostPath"] != source:
                device = ET.tostring(filesystem_element(Path(source), name), encoding="unicode")
                dom.detachDeviceFlags(device, libvirt.VIR_DOMAIN_AFFECT_LIVE)
                del bridged[name]
        for name, folder in live.items():
            if name not in bridged:
                source = folder["hostPath"]
                device = ET.tostring(filesystem_element(Path(source), name), encoding="unicode")
                dom.attachDeviceFlags(device, libvirt.VIR_DOMAIN_AFFECT_LIVE)
                bridged[name] = source
    finally:
        conn.close()


def unplug(machine: dict[str, Any]) -> None:
    """Unplug what ``sync`` plugged in for this machine (the end of a test)."""
    import libvirt

    from tests.testbed.domain import filesystem_element

    if not machine.get("domain") or not machine.get("bridged"):
        return
    conn = libvirt.open(URI)
    try:
        dom = conn.lookupByName(machine["domain"])
        for name, source in machine["bridged"].items():
            device = ET.tostring(filesystem_element(Path(source), name), encoding="unicode")
            try:
                dom.detachDeviceFlags(device, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as exc:
                if "no matching" not in str(exc).lower() and "not found" not in str(exc).lower():
                    raise
    finally:
        conn.close()
