"""Files vmshare edits on the host: through symlinks, rolled back exactly, nothing left behind;
and the owner a network share writes as (never root unasked)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from factories import spec_of
from test_netplan import actions, net_facts, net_vm, servers

from vmshare.errors import UsageError
from vmshare.facts import PathFact
from vmshare.formats import ownedblock
from vmshare.fsutil import atomic_write, backup_path, locked_folder, read_text, real_file
from vmshare.host.local import LocalHost
from vmshare.plan.removal import removal_plan
from vmshare.plan.resolve import resolve
from vmshare.plan.step import Step
from vmshare.protocols import nfs, smb
from vmshare.secrets import SecretStore
from vmshare.spec import NfsHost, SmbHost
from vmshare.state import State

# ------------------------------------------------------------------ atomic writes and symlinks


def test_a_write_through_a_symlink_chain_replaces_the_final_target_and_keeps_the_links(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "smb.conf"
    target.write_text("before\n")
    target.chmod(0o640)
    middle = tmp_path / "middle.conf"
    middle.symlink_to("real/smb.conf")  # relative, resolved from the link's folder
    link = tmp_path / "etc" / "smb.conf"
    link.parent.mkdir()
    link.symlink_to(middle)  # absolute
    atomic_write(link, b"after\n", keep_backup=True)
    assert os.readlink(link) == str(middle) and os.readlink(middle) == "real/smb.conf"
    assert target.read_text() == "after\n" and not target.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode
    assert (real_dir / "smb.conf.vmshare-bak").read_text() == "before\n"
    assert backup_path(link) == real_dir / "smb.conf.vmshare-bak"
    assert not (link.parent / "smb.conf.vmshare-bak").exists()
    assert sorted(p.name for p in real_dir.iterdir()) == ["smb.conf", "smb.conf.vmshare-bak"]


def test_a_dangling_symlink_gets_its_target_created(tmp_path):
    link = tmp_path / "fstab"
    link.symlink_to("fstab.real")
    assert read_text(link) == ""
    atomic_write(link, b"x\n", keep_backup=True)
    assert link.is_symlink() and (tmp_path / "fstab.real").read_text() == "x\n"
    assert stat.S_IMODE((tmp_path / "fstab.real").stat().st_mode) == 0o644
    assert not (tmp_path / "fstab.real.vmshare-bak").exists()  # nothing was there to keep


def test_a_symlink_loop_or_a_missing_target_folder_is_an_error_and_changes_nothing(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "a", b"x")
    assert info.value.errno == errno.ELOOP
    (tmp_path / "c").symlink_to("nowhere/c")
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "c", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]
    assert all(p.is_symlink() for p in tmp_path.iterdir())


def test_an_explicit_mode_wins_and_a_lock_is_taken_on_the_real_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "secret").symlink_to("real/secret")
    atomic_write(tmp_path / "secret", b"s", mode=0o600)
    assert stat.S_IMODE((tmp_path / "real" / "secret").stat().st_mode) == 0o600
    with locked_folder(tmp_path / "secret"):
        assert real_file(tmp_path / "secret") == tmp_path / "real" / "secret"


# ------------------------------------------------------------- server config files, rollback


def _samba(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conf: Path) -> smb.SambaExporter:
    settings = SmbHost(smb_conf=str(conf), include_file=str(tmp_path / "vmshare.conf"))
    return smb.SambaExporter(settings)


SHARE = smb.SmbShare("vmshare-a", "/srv/a", "127.0.0.1", False, "vmshare", "dev", "dev", True)


def test_a_symlinked_smb_conf_stays_a_link_and_gets_its_original_text_back(tmp_path, monkeypatch):
    (tmp_path / "dist").mkdir()
    real = tmp_path / "dist" / "smb.conf"
    real.write_text("[global]\n\tworkgroup = X\n")
    original = real.read_text()
    conf = tmp_path / "smb.conf"
    conf.symlink_to("dist/smb.conf")
    monkeypatch.setattr(smb.SambaExporter, "reload", lambda self: None)
    samba = _samba(tmp_path, monkeypatch, conf)
    samba.share(SHARE)
    assert conf.is_symlink() and "include = " in real.read_text()
    assert (tmp_path / "dist" / "smb.conf.vmshare-bak").read_text() == original
    samba.unshare(SHARE.entry_id)
    assert conf.is_symlink() and real.read_text() == original
    assert not (tmp_path / "vmshare.conf").exists()


def test_a_refused_first_share_leaves_no_include_file_and_no_backup(tmp_path, monkeypatch):
    conf = tmp_path / "smb.conf"
    conf.write_text("[global]\n")

    def refuse(self: object) -> None:
        raise RuntimeError("smbd is not running")

    monkeypatch.setattr(smb.SambaExporter, "reload", refuse)
    samba = _samba(tmp_path, monkeypatch, conf)
    with pytest.raises(RuntimeError):
        samba.share(SHARE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smb.conf"]
    assert conf.read_text() == "[global]\n"


def test_a_refused_include_takes_the_section_back_out(tmp_path, monkeypatch):
    conf = tmp_path / "smb.conf"
    conf.write_text("[global]\n")
    calls: list[int] = []

    def reload(self: object) -> None:
        calls.append(1)
        if len(calls) == 2:  # the include in smb.conf is refused
            raise RuntimeError("smbd refused smb.conf")

    monkeypatch.setattr(smb.SambaExporter, "reload", reload)
    samba = _samba(tmp_path, monkeypatch, conf)
    with pytest.raises(RuntimeError):
        samba.share(SHARE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smb.conf"]
    assert conf.read_text() == "[global]\n"


def test_a_refused_edit_of_an_existing_file_restores_it_and_its_backup(tmp_path, monkeypatch):
    exports = tmp_path / "vmshare.exports"
    exports.write_text("# one\n")
    exporter = nfs.KernelNfsExporter(NfsHost(exporter="kernel", exports_file=str(exports)))
    monkeypatch.setattr(nfs.KernelNfsExporter, "reload", lambda self: None)
    exporter.export(nfs.NfsExport("vmshare-a", "/srv/a", "127.0.0.1", False, 1, 1))
    kept = (tmp_path / "vmshare.exports.vmshare-bak").read_text()
    accepted = exports.read_text()
    calls: list[int] = []

    def reload(self: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("exportfs said no")

    monkeypatch.setattr(nfs.KernelNfsExporter, "reload", reload)
    with pytest.raises(RuntimeError):
        exporter.export(nfs.NfsExport("vmshare-b", "/srv/b", "127.0.0.1", False, 1, 1))
    assert exports.read_text() == accepted
    assert (tmp_path / "vmshare.exports.vmshare-bak").read_text() == kept  # as it was


# ------------------------------------------------------------------------ owner of the files


def test_a_root_owned_folder_without_owner_is_refused_for_nfs_and_smb(tmp_path):
    for protocol in ("nfs", "smb"):
        spec = spec_of(f'/srv/x testvm:/mnt/x protocol="{protocol}"')
        facts = net_facts(spec, net_vm())
        facts.host_paths["/srv/x"] = PathFact(exists=True, is_dir=True, uid=0, gid=0)
        with pytest.raises(UsageError, match="owned by root") as info:
            resolve(spec, facts, State(), origin="cli", servers=servers(tmp_path))
        assert "--owner UID:GID" in (info.value.hint or "") and "\n" not in info.value.message
        explicit = spec_of(f'/srv/x testvm:/mnt/x protocol="{protocol}" owner="0:0"')
        plan = resolve(explicit, facts, State(), origin="cli", servers=servers(tmp_path))
        assert plan.steps


def test_create_without_owner_is_refused_and_with_owner_the_folder_gets_it(tmp_path):
    spec = spec_of('/srv/new testvm:/mnt/x protocol="nfs" create=true')
    facts = net_facts(spec, net_vm())
    facts.host_paths["/srv/new"] = PathFact(exists=False, is_dir=False)
    with pytest.raises(UsageError, match="--create makes it as root"):
        resolve(spec, facts, State(), origin="cli", servers=servers(tmp_path))
    owned = spec_of('/srv/new testvm:/mnt/x protocol="nfs" create=true owner="1000:100"')
    plan = resolve(owned, facts, State(), origin="cli", servers=servers(tmp_path))
    mkdir = plan.steps[0]
    assert (mkdir.action, mkdir.args["owner"]) == ("mkdir", [1000, 100])
    assert "owned by 1000:100" in mkdir.summary
    folder = tmp_path / "made" / "here"
    LocalHost().mkdir(str(folder), owner=[4321, 8765])
    assert (folder.stat().st_uid, folder.stat().st_gid) == (4321, 8765)
    assert (folder.parent.stat().st_uid, folder.parent.stat().st_gid) == (os.getuid(), os.getgid())


# --------------------------------------------------------------------- the SMB account's undo


def test_the_smb_account_step_has_an_undo_that_runs_after_the_unshare(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="smb"')
    plan = resolve(
        spec, net_facts(spec, net_vm()), State(), origin="cli", servers=servers(tmp_path)
    )
    account = next(s for s in plan.steps if s.action == "smb_account")
    assert account.undo is not None and account.undo.action == "smb_account_remove"
    record = plan.records["testvm:/mnt/x"].model_copy(update={"steps": plan.steps})
    removal = actions(removal_plan([record], allow_restart=True))
    assert removal.index("host.smb_unshare") < removal.index("host.smb_account_remove")


def test_an_smb_account_step_journalled_without_undo_still_loads_and_removes(tmp_path):
    old = {
        "share": "testvm:/mnt/x",
        "layer": "host",
        "action": "smb_account",
        "vm": "testvm",
        "args": {"settings": SmbHost().model_dump(mode="json")},
        "summary": "make sure the Samba account vmshare exists",
    }
    step = Step.model_validate_json(json.dumps(old))
    assert step.undo is None
    spec = spec_of('/srv/x testvm:/mnt/x protocol="smb"')
    plan = resolve(
        spec, net_facts(spec, net_vm()), State(), origin="cli", servers=servers(tmp_path)
    )
    steps = [step if s.action == "smb_account" else s for s in plan.steps]
    record = plan.records["testvm:/mnt/x"].model_copy(update={"steps": steps})
    assert "host.smb_account_remove" not in actions(removal_plan([record]))


class _FakeAccounts:
    """What the real Samba/Unix account commands would report, for the host action's logic
    (the integration tests run the real commands)."""

    def __init__(self, exists: bool) -> None:
        self.exists, self.removed, self.in_use = exists, [], False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def ensure(samba: smb.SambaExporter, secret: Any) -> dict[str, bool]:
            created = not self.exists
            self.exists = True
            return {"unix_user": created, "samba_entry": created}

        monkeypatch.setattr(smb.SambaExporter, "ensure_account", ensure)
        monkeypatch.setattr(smb.SambaExporter, "account_in_use", lambda s: self.in_use)
        monkeypatch.setattr(
            smb.SambaExporter, "remove_account", lambda s, **kw: self.removed.append(kw)
        )


def test_the_account_goes_only_when_vmshare_made_it_and_no_share_uses_it(tmp_path, monkeypatch):
    settings = SmbHost().model_dump(mode="json")
    fake = _FakeAccounts(exists=False)
    fake.install(monkeypatch)
    ops = LocalHost(SecretStore(tmp_path))
    ops.smb_account(settings)
    ops.smb_account(settings)  # a second share: the record still says vmshare made it
    assert (tmp_path / "secrets" / "smb-vmshare").exists()
    fake.in_use = True
    assert ops.smb_account_remove(settings) is None and fake.removed == []
    fake.in_use = False
    assert ops.smb_account_remove(settings) is None
    assert fake.removed == [{"unix_user": True, "samba_entry": True}]
    assert not (tmp_path / "secrets" / "smb-vmshare").exists()
    assert not (tmp_path / "accounts" / "smb-vmshare.json").exists()

    found = _FakeAccounts(exists=True)
    found.install(monkeypatch)
    other = LocalHost(SecretStore(tmp_path / "other"))
    other.smb_account(settings)
    assert "did not create" in (other.smb_account_remove(settings) or "")
    assert found.removed == []


def test_smb_sections_pin_masks_that_hold_no_setuid_or_setgid_bit():
    lines = smb.render_section(SHARE).split("\n")
    masks = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in lines[1:])}
    assert int(masks["create mask"], 8) & 0o7000 == 0
    assert int(masks["directory mask"], 8) & 0o7000 == 0
    assert masks["force create mode"] == masks["force directory mode"] == "0000"


def test_account_in_use_reads_the_sections(tmp_path):
    samba = smb.SambaExporter(SmbHost(include_file=str(tmp_path / "vmshare.conf")))
    body = smb.render_section(SHARE)
    (tmp_path / "vmshare.conf").write_text(ownedblock.with_entry("", SHARE.entry_id, body))
    assert samba.account_in_use()
    other = smb.SambaExporter(
        SmbHost(include_file=str(tmp_path / "vmshare.conf"), account="vmshare2")
    )
    assert not other.account_in_use()


def test_a_unix_user_made_for_a_refused_samba_password_goes_again(monkeypatch):
    from vmshare import hostexec
    from vmshare.errors import HostCommandError
    from vmshare.secrets import Secret

    ran: list[str] = []

    def run(argv: list[str], **kw: Any) -> hostexec.CommandResult:
        ran.append(argv[0])
        if argv[0] == "smbpasswd":
            raise HostCommandError("smbpasswd failed")
        code = 1 if argv[0] in ("id", "pdbedit") else 0
        return hostexec.CommandResult(tuple(argv), code, b"", b"")

    monkeypatch.setattr(hostexec, "run", run)
    with pytest.raises(HostCommandError, match="cannot set the Samba password"):
        smb.SambaExporter(SmbHost()).ensure_account(Secret("test-only-password-1b9e"))
    assert ran == ["pdbedit", "id", "useradd", "smbpasswd", "userdel"]
