"""libvirt domain XML: the one place vmshare renders or reads it (ElementTree, never strings)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Literal

from vmshare.errors import UsageError
from vmshare.facts import FsDevice

ET.register_namespace("qemu", "http://libvirt.org/schemas/domain/qemu/1.0")
# what XML 1.0 cannot hold at all (ElementTree would write it, and libvirt refuse the document)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str, what: str) -> str:
    if _NOT_XML.search(value):
        raise UsageError(
            f"{what} {value!r} holds a character XML cannot carry (a control character or NUL)",
            hint="rename the folder",
        )
    return value


def filesystem_xml(device: FsDevice) -> str:
    """A ``<filesystem>`` device element for virtiofs or 9p."""
    accessmode = "passthrough" if device.protocol == "virtiofs" else "mapped"
    fs = ET.Element("filesystem", {"type": "mount", "accessmode": accessmode})
    if device.protocol == "virtiofs":
        # libvirt's defaults on purpose (virtiofsd cache=auto, QEMU's queue): measured against
        # cache=always (host edits never seen), none (walks 9-16x slower) and queue=1024 (no
        # faster); benchmarks/defaults.py, docs/performance.md "Defaults by measurement"
        ET.SubElement(fs, "driver", {"type": "virtiofs"})
    ET.SubElement(fs, "source", {"dir": _xml_text(device.source, "the host path")})
    ET.SubElement(fs, "target", {"dir": _xml_text(device.tag, "the device tag")})
    if device.readonly:
        ET.SubElement(fs, "readonly")
    return ET.tostring(fs, encoding="unicode")


def filesystems(domain_xml: str) -> dict[str, tuple[FsDevice, str]]:
    """Filesystem devices of a domain by tag, each with its own XML (as detach wants it)."""
    root = ET.fromstring(domain_xml)
    found: dict[str, tuple[FsDevice, str]] = {}
    for fs in root.findall("./devices/filesystem"):
        target = fs.find("target")
        source = fs.find("source")
        if target is None or source is None or fs.get("type", "mount") != "mount":
            continue
        driver = fs.find("driver")
        kind = "virtiofs" if driver is not None and driver.get("type") == "virtiofs" else "9p"
        device = FsDevice(
            tag=target.get("dir", ""),
            source=source.get("dir", ""),
            protocol=kind,
            readonly=fs.find("readonly") is not None,
        )
        found[device.tag] = (device, ET.tostring(fs, encoding="unicode"))
    return found


def has_shared_memory(domain_xml: str) -> bool:
    root = ET.fromstring(domain_xml)
    access = root.find("./memoryBacking/access")
    return access is not None and access.get("mode") == "shared"


def has_user_networking(domain_xml: str) -> bool:
    return ET.fromstring(domain_xml).find("./devices/interface[@type='user']") is not None


_LIBOSINFO = "{http://libosinfo.org/xmlns/libvirt/domain/1.0}"


def guest_os(domain_xml: str) -> Literal["linux", "windows"]:
    """The guest's OS: windows when the domain's libosinfo metadata (virt-install --os-variant)
    names a Microsoft OS, otherwise linux."""
    root = ET.fromstring(domain_xml)
    for os_el in root.iterfind(f"./metadata/{_LIBOSINFO}libosinfo/{_LIBOSINFO}os"):
        if os_el.get("id", "").startswith("http://microsoft.com/win"):
            return "windows"
    return "linux"


def has_acpi(domain_xml: str) -> bool:
    return ET.fromstring(domain_xml).find("./features/acpi") is not None


def with_shared_memory(domain_xml: str) -> str:
    """The domain with memfd shared memory backing, as virtiofs needs; other settings kept."""
    root = ET.fromstring(domain_xml)
    backing = root.find("memoryBacking")
    if backing is None:
        backing = ET.Element("memoryBacking")
        memory = root.find("currentMemory") or root.find("memory")
        index = list(root).index(memory) + 1 if memory is not None else len(root)
        root.insert(index, backing)
    if backing.find("source") is None:
        ET.SubElement(backing, "source", {"type": "memfd"})
    access = backing.find("access")
    if access is None:
        access = ET.SubElement(backing, "access")
    access.set("mode", "shared")
    return ET.tostring(root, encoding="unicode")
