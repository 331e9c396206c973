"""libvirt domain XML (backends/libvirt/domain_xml.py) with hostile host paths and tags, parsed
back by expat (ElementTree, strict XML 1.0): one <filesystem> element with exactly its driver,
source, target and readonly children, attribute values equal to the input, and the domain's
other elements untouched by with_shared_memory."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import example, given
from hypothesis import strategies as st

from tests.property import hostile
from vmshare.backends.libvirt.domain_xml import filesystem_xml, filesystems, with_shared_memory
from vmshare.errors import UsageError
from vmshare.facts import FsDevice

RENDERER = "libvirt XML"


def xml_char_ok(c: str) -> bool:  # XML 1.0's Char production
    n = ord(c)
    return n in (0x9, 0xA, 0xD) or 0x20 <= n <= 0xD7FF or 0xE000 <= n <= 0xFFFD or n >= 0x10000


@given(
    source=hostile.path,
    tag=hostile.nonempty,
    protocol=st.sampled_from(["virtiofs", "9p"]),
    readonly=st.booleans(),
)
@example(source="/srv/a'/><source dir='/etc", tag="t", protocol="virtiofs", readonly=False)
@example(source="/srv/]]><!--", tag="t\n\r\t", protocol="9p", readonly=True)
@example(source="/srv/\x01", tag="t", protocol="9p", readonly=True)
def test_filesystem_element_reads_back_exactly(source, tag, protocol, readonly):
    hostile.tally(RENDERER)
    device = FsDevice(tag=tag, source=source, protocol=protocol, readonly=readonly)
    try:
        xml = filesystem_xml(device)
    except UsageError:
        assert not all(xml_char_ok(c) for c in source + tag)
        return
    element = ET.fromstring(xml)
    assert element.tag == "filesystem"
    children = [child.tag for child in element]
    expected = ["driver"] if protocol == "virtiofs" else []
    assert children == [*expected, "source", "target", *(["readonly"] if readonly else [])]
    assert element.find("source").attrib == {"dir": source}
    assert element.find("target").attrib == {"dir": tag}
    domain = f"<domain><name>v</name><devices>{xml}</devices></domain>"
    assert filesystems(domain) == {tag: (device, xml)}


@given(name=hostile.text, title=hostile.text)
def test_shared_memory_keeps_the_rest_of_the_domain(name, title):
    hostile.tally(RENDERER)
    if not all(xml_char_ok(c) for c in name + title):
        return  # libvirt never hands out such a document
    root = ET.Element("domain", {"type": "qemu"})
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "memory").text = "262144"
    ET.SubElement(root, "devices")
    document = ET.tostring(root, encoding="unicode")
    before = ET.fromstring(document)
    out = ET.fromstring(with_shared_memory(document))
    assert [c.tag for c in out] == ["name", "title", "memory", "memoryBacking", "devices"]
    for tag in ("name", "title"):
        assert out.find(tag).text == before.find(tag).text
