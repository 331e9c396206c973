"""A config file written through sudo is as durable as one written directly: the staged copy is
fsynced before the rename, and the folder after it (a crash must never leave an empty file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmshare import hostexec
from vmshare.host import privileged, rootfiles


@pytest.mark.parametrize("bsd", [False, True])
def test_a_file_written_through_sudo_is_flushed_before_and_after_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bsd: bool
) -> None:
    target = tmp_path / "smb.conf"
    target.write_text("[global]\n")
    calls: list[list[str]] = []
    monkeypatch.setattr(rootfiles, "direct", lambda path: False)
    monkeypatch.setattr(privileged, "BSD_SYNC", bsd)
    monkeypatch.setattr(hostexec, "run", lambda argv, **kw: calls.append(argv))
    rootfiles.write(target, b"[global]\nnew\n")
    programs = [argv[0] for argv in calls]
    assert programs == ["cp", "tee", "sync", "mv", "sync"]
    staged = str(privileged.staged_path(target))
    if bsd:
        assert calls[2] == calls[4] == ["sync"]
    else:
        assert calls[2] == ["sync", "--", staged]
        assert calls[4] == ["sync", "--", str(tmp_path)]
