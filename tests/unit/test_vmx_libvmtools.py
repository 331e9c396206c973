"""formats/vmx.py checked against VMware's own .vmx line code: DictLL_UnmarshalLine (reading) and
DictLL_MarshalLine (writing) in libvmtools.so.0, from Debian's open-vm-tools (scripts/setup
installs it), called through ctypes."""

import ctypes
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_vmx_format import HOSTILE

from vmshare.formats import vmx

DATA = Path(__file__).parent / "data" / "vmx"
FIXTURES = sorted(p.name for p in DATA.glob("*.vmx"))

try:
    LIB = ctypes.CDLL("libvmtools.so.0")
except OSError:
    LIB = None

pytestmark = pytest.mark.skipif(
    LIB is None, reason="libvmtools.so.0 is missing: scripts/setup installs open-vm-tools"
)


class DynBuf(ctypes.Structure):  # open-vm-tools lib/include/dynbuf.h
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_size_t),
        ("allocated", ctypes.c_size_t),
    ]


def _bind():
    out = ctypes.POINTER(ctypes.c_char_p)
    LIB.DictLL_UnmarshalLine.restype = ctypes.c_void_p
    LIB.DictLL_UnmarshalLine.argtypes = [ctypes.c_void_p, ctypes.c_size_t, out, out, out]
    LIB.DictLL_MarshalLine.restype = ctypes.c_char
    LIB.DictLL_MarshalLine.argtypes = [ctypes.POINTER(DynBuf), ctypes.c_char_p, ctypes.c_char_p]
    LIB.DynBuf_Init.argtypes = [ctypes.POINTER(DynBuf)]
    LIB.DynBuf_Destroy.argtypes = [ctypes.POINTER(DynBuf)]


if LIB is not None:
    _bind()


def vmware_read(data: bytes) -> dict[str, bytes]:
    """name (lower case) -> unescaped value bytes, the last one winning, as VMware reads them.

    VMware on Windows reads in text mode, so CRLF is read as LF.
    """
    data = data.removeprefix(vmx.UTF8_BOM).replace(b"\r\n", b"\n")
    buf = ctypes.create_string_buffer(data, len(data))
    base, pos, found = ctypes.addressof(buf), 0, {}
    while True:
        line, name, value = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_char_p()
        nxt = LIB.DictLL_UnmarshalLine(
            base + pos, len(data) - pos, ctypes.byref(line), ctypes.byref(name), ctypes.byref(value)
        )
        if not nxt:
            return found
        if name.value is not None:
            found[name.value.decode("latin-1").lower()] = value.value
        pos = nxt - base


def vmware_write(name: bytes, value: bytes) -> bytes:
    """The line VMware writes for ``name`` and ``value`` (without its newline)."""
    buf = DynBuf()
    LIB.DynBuf_Init(ctypes.byref(buf))
    try:
        assert LIB.DictLL_MarshalLine(ctypes.byref(buf), name, value) != b"\0"
        return ctypes.string_at(buf.data, buf.size).removesuffix(b"\n")
    finally:
        LIB.DynBuf_Destroy(ctypes.byref(buf))


def values(f: vmx.VmxFile) -> dict[str, bytes]:
    """Every name the module read (any bytes, not only the keys vmshare writes) -> value bytes."""
    return {
        line.name.decode("latin-1").lower(): vmx.unescape(line.escaped)
        for line in f._lines
        if line.name is not None
    }


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_read_as_vmware_reads_them(name):
    data = (DATA / name).read_bytes()
    assert values(vmx.parse(data)) == vmware_read(data)


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_written_as_vmware_writes_them_and_read_back(name, value):
    data = (DATA / name).read_bytes()
    f = vmx.parse(data)
    before = set(vmware_read(data))
    try:
        f.set("vmshare.new", value)
        f.set("displayName", value)
    except Exception:  # a character the file's encoding cannot hold: refused, nothing written
        assert f.render() == data
        return
    out = f.render()
    encoded = value.encode(f.encoding or "ascii")
    lines = out.replace(b"\r\n", b"\n").split(b"\n")
    assert vmware_write(b"vmshare.new", encoded) in lines
    read = vmware_read(out)
    assert set(read) == before | {"vmshare.new"}
    assert read["vmshare.new"] == read["displayname"] == encoded


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=60).filter(lambda b: b"\0" not in b))
def test_escape_is_vmwares_for_any_bytes(raw):
    assert vmware_write(b"k", raw) == b'k = "' + vmx.escape(raw) + b'"'
    assert vmware_read(b'k = "' + vmx.escape(raw) + b'"\n') == {"k": raw}


@settings(max_examples=300, deadline=None)
@given(line=st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\0" not in b))
def test_any_line_means_what_it_means_to_vmware(line):
    f = vmx.parse(line + b"\n")
    assert f.render() == line + b"\n"
    assert values(f) == vmware_read(line + b"\n")
