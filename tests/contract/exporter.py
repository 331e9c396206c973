"""ExporterFileContract and ExporterServerContract: what every host exporter does.

An exporter (kernel nfsd, nfs-ganesha, macOS nfsd, Samba...) keeps vmshare's entries in an
owned block of a server config file and makes the server read it again. The contract is split
honestly in two:

- ``ExporterFileContract``: the file. Export shows the entry, exporting again changes no byte and
  reloads nothing, unexport removes exactly that entry (other entries and every line outside
  vmshare's block stay), a hostile path or entry id cannot add a line, section or option (the
  file is parsed back, by the server's own parser where one runs here), every change is atomic
  (a new inode, no temp file left) with the previous version kept, and each change reloads the
  server once. Every exporter opts in.
- ``ExporterServerContract``: a real server, reloaded by the exporter's own ``reload``, then
  serves the export (the folder's own files) and refuses it after unexport. Only exporters whose
  server runs here opt in (ganesha, Samba). Kernel nfsd and macOS cannot reload on this machine
  (no nfsd in the kernel, no macOS): they opt into the file part only, with their reload
  recorded instead of run, and claim nothing about a server.

Fixture an opt-in provides: ``exporter_bed`` (an ExporterBed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vmshare.errors import VmshareError
from vmshare.formats import ownedblock
from vmshare.fsutil import backup_path
from vmshare.protocols.exportfile import OwnedConfigFile

# Folder names an export must carry as themselves (made on disk: a server checks them)
HOSTILE_NAMES = [
    'it\'s "quoted"',
    "$(touch /tmp/pwned);`id`",
    "semi;colon & amp # hash",
    "braces } { ] [ = ,",
    "back\\slash",
    "‘curly’ ‛quotes‚ ✓",
    "sp ace",
]
# ...and ones an exporter may refuse instead (an error, the file unchanged)
REFUSABLE_NAMES = [
    "new\nline",
    "new\n# END vmshare",
    "cr\rreturn",
    "per%cent",
    " edge ",
    "sp  ace",
    "tab\there",
]


@dataclass
class ExporterBed:
    """One exporter and what the contract needs to drive and check it."""

    exporter: OwnedConfigFile
    add: Callable[[str, str, bool], None]  # (entry id, folder, readonly)
    remove: Callable[[str], None]
    # the exported folders the file holds, by the format's parser (the server's own if it runs)
    parse: Callable[[str], list[str]]
    files: list[Path]  # every file the exporter edits (its own, the server's main config)
    workdir: Path  # a folder every user can traverse, for the exported folders
    # (entry id) -> names in the served folder's root, or None if the server refuses it
    served: Callable[[str], list[str] | None] | None = None
    reloads: list[str] = field(default_factory=list)
    user_paths: list[str] = field(default_factory=list)  # exported by the user's own lines

    def exported(self) -> list[str]:
        """The folders vmshare's entries export, as the file parses back (the user's own
        exports, found before the test, must come first and unchanged)."""
        found = self.parse(self.exporter.path.read_text()) if self.exporter.path.exists() else []
        assert found[: len(self.user_paths)] == self.user_paths
        return found[len(self.user_paths) :]


def outside_block(path: Path) -> str:
    """The file's lines that are not vmshare's (the user's own)."""
    if not path.exists():
        return ""
    text = path.read_text()
    lines = text.splitlines()
    if ownedblock.BEGIN in lines and ownedblock.END in lines:
        start = lines.index(ownedblock.BEGIN)
        end = lines.index(ownedblock.END, start)
        lines = lines[:start] + lines[end + 1 :]
    return "\n".join(lines)


def folder(bed: ExporterBed, name: str) -> str:
    path = bed.workdir / name
    path.mkdir(exist_ok=True)
    path.chmod(0o755)
    (path / "marker.txt").write_text(name)
    return str(path)


class ExporterFileContract:
    @pytest.fixture
    def exporter_bed(self) -> ExporterBed:
        raise NotImplementedError("an opt-in class provides its exporter")

    @pytest.fixture
    def bed(self, exporter_bed: ExporterBed):
        """The opt-in's bed, its reloads counted (the real reload still runs, if it has one),
        and every entry the test made removed afterwards."""
        real_reload = exporter_bed.exporter.reload

        def counted() -> None:
            exporter_bed.reloads.append(str(exporter_bed.exporter.path))
            real_reload()

        exporter_bed.exporter.reload = counted  # type: ignore[method-assign]
        path = exporter_bed.exporter.path
        exporter_bed.user_paths = exporter_bed.parse(path.read_text()) if path.exists() else []
        yield exporter_bed
        for entry_id in list(exporter_bed.exporter.entries()):
            exporter_bed.remove(entry_id)
        del exporter_bed.exporter.reload

    def test_export_shows_the_entry_and_is_idempotent(self, bed: ExporterBed):
        path = folder(bed, "plain")
        bed.add("ct-a", path, False)
        assert list(bed.exporter.entries()) == ["ct-a"]
        assert bed.exported() == [path]
        assert bed.reloads
        before = {f: f.read_bytes() for f in bed.files if f.exists()}
        reloads = len(bed.reloads)
        bed.add("ct-a", path, False)
        assert {f: f.read_bytes() for f in bed.files if f.exists()} == before
        assert len(bed.reloads) == reloads  # nothing changed: no reload

    def test_unexport_removes_exactly_that_entry(self, bed: ExporterBed):
        user_lines = {f: outside_block(f) for f in bed.files}
        a, b = folder(bed, "a"), folder(bed, "b")
        bed.add("ct-a", a, False)
        bed.add("ct-b", b, True)
        entry_b = bed.exporter.entries()["ct-b"]
        reloads = len(bed.reloads)
        bed.remove("ct-a")
        assert bed.exporter.entries() == {"ct-b": entry_b}
        assert bed.exported() == [b]
        assert len(bed.reloads) == reloads + 1
        for f in bed.files:
            assert outside_block(f) == user_lines[f], f
        bed.remove("ct-a")  # again: nothing to do
        assert len(bed.reloads) == reloads + 1
        bed.remove("ct-b")
        for f in bed.files:
            assert outside_block(f) == user_lines[f], f

    @pytest.mark.parametrize("name", HOSTILE_NAMES + REFUSABLE_NAMES)
    def test_a_hostile_path_is_carried_as_itself_or_refused(self, bed: ExporterBed, name):
        plain = folder(bed, "plain")
        bed.add("ct-a", plain, False)
        before = {f: f.read_bytes() for f in bed.files if f.exists()}
        hostile = str(bed.workdir / name)
        try:
            bed.add("ct-h", hostile, False)
        except (VmshareError, ValueError):
            if name in HOSTILE_NAMES:
                raise  # a plain folder name, however odd: it must be exported
            assert {f: f.read_bytes() for f in bed.files if f.exists()} == before
            return
        assert sorted(bed.exporter.entries()) == ["ct-a", "ct-h"]
        assert sorted(bed.exported()) == sorted([plain, hostile])
        bed.remove("ct-h")
        assert {f: f.read_bytes() for f in bed.files if f.exists()} == before

    @pytest.mark.parametrize(
        "entry_id", ["x\n# END vmshare", "x y", "x]", "x;y", "../x", "", "x\nPath = /etc"]
    )
    def test_a_hostile_entry_id_is_refused_and_changes_nothing(self, bed: ExporterBed, entry_id):
        bed.add("ct-a", folder(bed, "plain"), False)
        before = {f: f.read_bytes() for f in bed.files if f.exists()}
        with pytest.raises((VmshareError, ValueError)):
            bed.add(entry_id, folder(bed, "other"), False)
        assert {f: f.read_bytes() for f in bed.files if f.exists()} == before

    def test_every_change_is_atomic_and_keeps_the_previous_version(self, bed: ExporterBed):
        bed.add("ct-a", folder(bed, "a"), False)
        first = bed.exporter.path.read_bytes()
        inode = bed.exporter.path.stat().st_ino
        bed.add("ct-b", folder(bed, "b"), False)
        assert bed.exporter.path.stat().st_ino != inode  # a new file renamed over the old
        assert backup_path(bed.exporter.path).read_bytes() == first
        second = bed.exporter.path.read_bytes()
        bed.remove("ct-b")
        assert backup_path(bed.exporter.path).read_bytes() == second
        assert bed.exporter.path.read_bytes() == first
        leftovers = [
            p.name
            for f in bed.files
            for p in f.parent.iterdir()
            if p.name.startswith(f".{f.name}") or p.name.endswith((".tmp", ".part"))
        ]
        assert leftovers == []


def wait_for(check: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


class ExporterServerContract:
    """Needs ``exporter_bed`` with ``served``; the server is real and reloaded for real."""

    @pytest.fixture
    def exporter_bed(self) -> ExporterBed:
        raise NotImplementedError("an opt-in class provides its exporter and server")

    @pytest.fixture
    def served_bed(self, exporter_bed: ExporterBed):
        assert exporter_bed.served is not None, "the server part needs a real server"
        yield exporter_bed
        for entry_id in list(exporter_bed.exporter.entries()):
            exporter_bed.remove(entry_id)

    def test_the_server_serves_the_export_and_refuses_it_after_unexport(self, served_bed):
        bed, served = served_bed, served_bed.served
        keep, gone = folder(bed, "keep"), folder(bed, "gone")
        bed.add("ct-keep", keep, False)
        bed.add("ct-gone", gone, True)
        assert wait_for(lambda: served("ct-gone") == ["marker.txt"]), served("ct-gone")
        bed.remove("ct-gone")
        assert wait_for(lambda: served("ct-gone") is None), served("ct-gone")
        assert served("ct-keep") == ["marker.txt"]  # the other export is still served

    def test_a_hostile_folder_is_served_as_itself(self, served_bed):
        bed, served = served_bed, served_bed.served
        name = HOSTILE_NAMES[0] + " " + HOSTILE_NAMES[2] + " " + HOSTILE_NAMES[3]
        path = folder(bed, name)
        (Path(path) / "only-here.txt").write_text("x")
        os.chmod(path, 0o755)
        bed.add("ct-hostile", path, False)
        assert wait_for(lambda: served("ct-hostile") == ["marker.txt", "only-here.txt"]), served(
            "ct-hostile"
        )
