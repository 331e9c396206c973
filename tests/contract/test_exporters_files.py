"""Kernel nfsd and macOS exports: the file part of the exporter contract only.

Neither server can run here (no nfsd in this kernel, no macOS), so their reload is recorded,
not run, and they do not opt into ExporterServerContract: nothing here claims a server took
their file.
"""

from __future__ import annotations

import pytest

from tests.contract.exporter import ExporterBed, ExporterFileContract
from tests.contract.formats import kernel_exports_paths, macos_exports_paths
from vmshare.protocols.nfs import KernelNfsExporter, MacNfsExporter, NfsExport, NfsExporter
from vmshare.spec import NfsHost


def nfs_bed(exporter: NfsExporter, parse, tmp_path) -> ExporterBed:
    recorded: list[str] = []
    exporter.reload = lambda: recorded.append("reload (recorded, not run)")  # type: ignore[method-assign]

    def add(entry_id: str, path: str, readonly: bool) -> None:
        exporter.export(NfsExport(entry_id, path, "127.0.0.1", readonly, 33, 33))

    (tmp_path / "folders").mkdir()
    return ExporterBed(
        exporter=exporter,
        add=add,
        remove=exporter.unexport,
        parse=parse,
        files=[exporter.path],
        workdir=tmp_path / "folders",
    )


class TestKernelNfsExportsFile(ExporterFileContract):
    @pytest.fixture
    def exporter_bed(self, tmp_path):
        exports = tmp_path / "exports.d" / "vmshare.exports"
        exports.parent.mkdir()
        exports.write_text("# the user's own\n/srv/user 10.9.9.9(ro,sync)\n")
        settings = NfsHost(exporter="kernel", exports_file=str(exports))
        return nfs_bed(KernelNfsExporter(settings), kernel_exports_paths, tmp_path)


class TestMacNfsExportsFile(ExporterFileContract):
    @pytest.fixture
    def exporter_bed(self, tmp_path):
        exports = tmp_path / "exports"
        exports.write_text('# the user\'s own\n"/Users/me" -ro 10.9.9.9\n')
        settings = NfsHost(exporter="macos", exports_file=str(exports))
        return nfs_bed(MacNfsExporter(settings), macos_exports_paths, tmp_path)
