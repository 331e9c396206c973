"""LibvirtBackend against the real libvirtd, on a defined (never started) domain."""

import uuid

import libvirt
import pytest

from tests.contract.backend import DeviceBackendContract
from tests.testbed.libvirtd import ensure_libvirtd
from vmshare.backends.libvirt.backend import LibvirtBackend
from vmshare.backends.libvirt.settings import LibvirtVm

pytestmark = pytest.mark.integration
URI = "qemu:///system"


class TestLibvirtBackend(DeviceBackendContract):
    @pytest.fixture
    def vm(self):
        ensure_libvirtd(URI)
        name = f"vmshare-contract-{uuid.uuid4().hex[:8]}"
        xml = (
            f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
            "<os><type arch='x86_64'>hvm</type></os><features><acpi/></features></domain>"
        )
        conn = libvirt.open(URI)
        dom = conn.defineXML(xml)
        try:
            yield name
        finally:
            dom.undefine()
            conn.close()

    @pytest.fixture
    def backend(self):
        backend = LibvirtBackend(LibvirtVm(name="contract", connection=URI))
        yield backend
        backend.close()

    @pytest.fixture
    def device(self):
        return "virtiofs"
