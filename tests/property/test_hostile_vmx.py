"""Workstation/Fusion .vmx shared folders (formats/vmx.py) with hostile host paths and guest
paths, read back by VMware's own line reader (DictLL_UnmarshalLine in libvmtools.so.0, through
tests/unit/test_vmx_libvmtools.py): exactly the folder's keys are added, with exactly the host
path and share name as values, every other key keeps its value, and removing the folder gives
the other keys back. Or the value is refused (a character the file's encoding cannot hold)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.property import hostile
from tests.unit.test_vmx_libvmtools import DATA, FIXTURES, vmware_read
from vmshare.errors import UsageError
from vmshare.formats import vmx

RENDERER = ".vmx"
FOLDER_KEYS = {
    "present",
    "enabled",
    "readaccess",
    "writeaccess",
    "hostpath",
    "guestname",
    "expiration",
}


def encodable(value: str, codec: str) -> bool:
    try:
        value.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize("fixture", FIXTURES)
@given(host_path=hostile.path, guest_path=hostile.path, readonly=st.booleans())
@example(host_path='/srv/x"\nsharedFolder9.hostPath = "/', guest_path="/mnt/x", readonly=True)
@example(host_path="/srv/|22|0A|7C", guest_path="/mnt/\u2028-y", readonly=False)
@example(host_path="/srv/#x = 1", guest_path="/-", readonly=False)
def test_shared_folder_keys_read_back_by_vmware(fixture, host_path, guest_path, readonly):
    hostile.tally(RENDERER)
    data = (DATA / fixture).read_bytes()
    before = vmware_read(data)
    name = vmx.share_name(guest_path)
    assert vmx.SHARE_NAME.fullmatch(name)  # no character of the path reaches the name raw
    f = vmx.parse(data)
    try:
        index = vmx.with_shared_folder(f, name, host_path, readonly)
    except UsageError:  # edit_vmx then writes nothing
        assert "\0" in host_path or not encodable(host_path, f.encoding or "ascii")
        return
    out = f.render()
    read = vmware_read(out)
    prefix = f"sharedfolder{index}."
    added = {k for k in read if k not in before}
    assert added <= {prefix + k for k in FOLDER_KEYS} | {"sharedfolder.maxnum"}
    assert {prefix + k for k in FOLDER_KEYS} <= set(read)
    assert read[prefix + "hostpath"] == host_path.encode(f.encoding or "ascii")
    assert read[prefix + "guestname"] == name.encode()
    assert read[prefix + "writeaccess"] == (b"FALSE" if readonly else b"TRUE")
    changed = {k for k in before if read.get(k) != before[k]}
    assert changed <= {"sharedfolder.maxnum", "isolation.tools.hgfs.disable"} | {
        prefix + k for k in FOLDER_KEYS
    }
    g = vmx.parse(out)
    assert vmx.without_shared_folder(g, name) == index
    after = vmware_read(g.render())
    assert not any(k.startswith(prefix) for k in after if k not in before)
