"""vSphere extraConfig records (backends/vsphere/record.py): the key is
``guestinfo.vmshare.<tag>`` for a tag of letters, digits and '-' only (anything else is refused,
so no value can name another key), and the JSON value comes back as the record it was, also after
VMware's own .vmx line writer and reader (libvmtools) have carried it, as vSphere stores it."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from tests.property import hostile
from tests.unit.test_vmx_libvmtools import vmware_read, vmware_write
from vmshare.backends.vsphere import record

RENDERER = "extraConfig"
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), hostile.text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile.text, inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    tag=st.one_of(hostile.text, st.from_regex(r"[A-Za-z0-9-]{1,64}", fullmatch=True)),
    fields=st.dictionaries(hostile.text, json_value, max_size=4),
)
@example(tag="x.other", fields={"path": '/srv/a"\nguestinfo.vmshare.y = "{}'})
def test_record_keys_and_values_read_back(tag, fields):
    hostile.tally(RENDERER)
    try:
        key = record.key_for(tag)
    except ValueError:
        assert not (
            tag and len(tag) <= 64 and all(c.isascii() and (c.isalnum() or c == "-") for c in tag)
        )
        return
    assert key == "guestinfo.vmshare." + tag
    assert tag and len(tag) <= 64 and all(c.isascii() and (c.isalnum() or c == "-") for c in tag)
    spec = record.spec_setting(tag, fields)
    (option,) = spec.extraConfig
    assert option.key == key
    assert record.records([option]) == ({tag: fields} if isinstance(fields, dict) else {})
    # as a .vmx line (vSphere keeps extraConfig there): one line, read back as the same value
    line = vmware_write(key.encode(), option.value.encode())
    assert b"\n" not in line
    assert vmware_read(line + b"\n") == {key.lower(): option.value.encode()}
    deleted = record.spec_setting(tag, None).extraConfig[0]
    assert record.records([option, deleted]) == {}
