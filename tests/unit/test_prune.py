"""`vmshare prune`: the leftover finders on real export files, smb.conf and fstab text, the
choice of what is a leftover (never a recorded share's, never an object without vmshare's
names), and the command's confirmation, --yes, --dry-run and --json paths."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from factories import fresh_vm

from vmshare.cli import main
from vmshare.core import Session
from vmshare.errors import BackendUnavailable
from vmshare.facts import FsDevice, GuestMount, VmFacts
from vmshare.formats import fstab, ownedblock
from vmshare.plan.network import HostServers
from vmshare.protocols import mount_tag, nfs, smb
from vmshare.prune import find_leftovers
from vmshare.spec import HostSettings, NfsHost, SmbHost, vm_settings
from vmshare.state import ShareRecord, State, StateStore, now

KEPT = "vm1:/mnt/kept"  # a share the state records
LOST = "vm1:/mnt/lost"  # one whose record is gone
KEPT_TAG, LOST_TAG = mount_tag(KEPT), mount_tag(LOST)
USER_EXPORT = "/srv/mine 192.0.2.7(rw,sync)\n"
USER_FSTAB = "UUID=1234 /home ext4 defaults 0 2\n/dev/sdb1 /mnt/lost-not ext4 noauto 0 0\n"


def record(key: str, connection: str = "qemu:///system") -> ShareRecord:
    vm, _, target = key.partition(":")
    return ShareRecord(
        key=key,
        vm=vm,
        vm_spec=vm_settings(vm, connection=connection),
        source=f"/srv{target}",
        target=target,
        protocol="nfs",
        tag=mount_tag(key),
        readonly=False,
        requested={},
        origin="cli",
        created=now(),
    )


def nfs_export(tag: str, path: str) -> nfs.NfsExport:
    return nfs.NfsExport(tag, path, "192.0.2.10", False, 1000, 100)


def with_entries(text: str, entries: dict[str, str]) -> str:
    for entry_id, body in entries.items():
        text = ownedblock.with_entry(text, entry_id, body)
    return text


@pytest.fixture
def files(tmp_path):
    """Every host file vmshare shares with the user, each with a line of the user's, one kept
    share's entry and one lost share's entry, as vmshare's own renderers write them."""
    settings = {
        "kernel": NfsHost(exporter="kernel", exports_file=str(tmp_path / "vmshare.exports")),
        "ganesha": NfsHost(exporter="ganesha", exports_file=str(tmp_path / "ganesha.conf")),
        "macos": NfsHost(exporter="macos", exports_file=str(tmp_path / "exports")),
    }
    for exporter_settings in settings.values():
        exporter = nfs.exporter_for(exporter_settings)
        body = {
            tag: exporter.render(nfs_export(tag, f"/srv/{tag}")) for tag in (KEPT_TAG, LOST_TAG)
        }
        exporter.path.write_text(with_entries(USER_EXPORT, body))
    conf = tmp_path / "smb-vmshare.conf"
    shares = {
        tag: smb.render_section(
            smb.SmbShare(tag, f"/srv/{tag}", "192.0.2.10", False, "vmshare", "dev", "users", True)
        )
        for tag in (KEPT_TAG, LOST_TAG)
    }
    conf.write_text(with_entries("[mine]\n   path = /srv/mine\n", shares))
    return settings, SmbHost(include_file=str(conf))


@pytest.mark.parametrize("exporter", ["kernel", "ganesha", "macos"])
def test_export_finder_takes_only_the_lost_entry_and_the_user_lines_stay(files, exporter):
    from vmshare.plan.leftovers import export_leftovers, is_tag

    nfs_settings, smb_settings = files
    servers = HostServers.from_settings(HostSettings(nfs=nfs_settings[exporter], smb=smb_settings))
    exports = {p: servers.entries(p) for p in ("nfs", "smb")}
    assert set(exports["nfs"]) == set(exports["smb"]) == {KEPT_TAG, LOST_TAG}

    def unknown(tag: str) -> bool:
        return is_tag(tag) and tag != KEPT_TAG

    steps = export_leftovers(exports, servers, unknown, lambda t: t, lambda _t: "")
    assert [(s.action, s.args["entry_id"]) for s in steps] == [
        ("nfs_unexport", LOST_TAG),
        ("smb_unshare", LOST_TAG),
    ]
    assert steps[0].args["exporter"] == exporter
    # what the steps do to the files (the exporters' own edit): the user's bytes stay
    for path in (servers.nfs.path, Path(smb_settings.include_file)):
        text = path.read_text()
        after = ownedblock.without_entry(text, LOST_TAG)
        assert after.startswith(USER_EXPORT if path == servers.nfs.path else "[mine]\n")
        assert set(ownedblock.entries(after)) == {KEPT_TAG}


def lost_vm(**kw: object) -> VmFacts:
    """A VM holding the lost share's device, mount and fstab line, the kept share's, and the
    user's own mount and fstab lines."""
    devices = {
        tag: FsDevice(tag=tag, source=f"/srv/{tag}", protocol="virtiofs")
        for tag in (KEPT_TAG, LOST_TAG)
    }
    devices["users-own"] = FsDevice(tag="users-own", source="/srv/own", protocol="virtiofs")
    vm = fresh_vm("vm1", persistent_devices=devices, running_devices=dict(devices), **kw)
    text = USER_FSTAB
    for key, tag in ((KEPT, KEPT_TAG), (LOST, LOST_TAG)):
        target = key.partition(":")[2]
        line = fstab.render_entry(fstab.MountEntry(tag, target, "virtiofs", ("rw", "nofail")))
        text = fstab.with_entry(text, tag, line)
        vm.guest.mounts[target] = GuestMount(
            source=tag, target=target, fstype="virtiofs", options=["rw"]
        )
    vm.guest.mounts["/mnt/lost-not"] = GuestMount(
        source="/dev/sdb1", target="/mnt/lost-not", fstype="ext4", options=["rw"]
    )
    vm.guest.fstab_entries = fstab.block_entries(text)
    vm.guest.fstab_entries["_text"] = text  # kept aside for the test (not a tag: never taken)
    return vm


def test_vm_finder_takes_the_lost_share_and_leaves_the_kept_and_the_users():
    from vmshare.plan.leftovers import is_tag, vm_leftovers

    vm = lost_vm()
    text = vm.guest.fstab_entries.pop("_text")

    def unknown(tag: str) -> bool:
        return is_tag(tag) and tag != KEPT_TAG

    steps = vm_leftovers("vm1", vm, unknown, lambda tag: LOST if tag == LOST_TAG else tag)
    assert [(s.layer, s.action) for s in steps] == [
        ("guest", "unmount"),
        ("guest", "fstab_remove"),
        ("guest", "remove_file"),
        ("hypervisor", "detach_share"),
    ]
    assert steps[0].args == {"target": "/mnt/lost"}
    assert steps[1].args == {"entry_id": LOST_TAG}
    assert steps[3].args["tag"] == LOST_TAG
    assert {s.share for s in steps} == {LOST}
    # the fstab edit the step makes keeps the user's lines byte for byte, and the kept entry
    after = fstab.without_entry(text, LOST_TAG)
    assert after.startswith(USER_FSTAB)
    assert set(fstab.block_entries(after)) == {KEPT_TAG}


def test_a_kernel_nfs_mount_is_found_through_its_fstab_line():
    """kernel nfsd exports by host path: the mount source holds no tag, the fstab line says."""
    from vmshare.plan.leftovers import is_tag, vm_leftovers

    vm = fresh_vm("vm1")
    source = "10.0.2.2:/srv/data"
    line = fstab.render_entry(fstab.MountEntry(source, "/mnt/lost", "nfs4", ("rw",)))
    gone = mount_tag("vm1:/mnt/gone")  # a lost line; the user mounted their own disk there
    other = fstab.render_entry(fstab.MountEntry(source, "/mnt/gone", "nfs4", ("rw",)))
    vm.guest.fstab_entries = {LOST_TAG: line, gone: other}
    vm.guest.mounts["/mnt/gone"] = GuestMount(
        source="/dev/sdc1", target="/mnt/gone", fstype="ext4", options=[]
    )
    vm.guest.mounts["/mnt/lost"] = GuestMount(
        source=source, target="/mnt/lost", fstype="nfs4", options=[]
    )
    vm.guest.mounts["/mnt/other"] = GuestMount(
        source="10.0.2.2:/srv/other", target="/mnt/other", fstype="nfs4", options=[]
    )
    steps = vm_leftovers("vm1", vm, is_tag, lambda t: t)
    assert [s.args.get("target") for s in steps if s.action == "unmount"] == ["/mnt/lost"]


@pytest.fixture
def session(tmp_path, monkeypatch, files):
    nfs_settings, smb_settings = files
    host = tmp_path / "host.toml"
    host.write_text(
        f'[nfs]\nexporter = "ganesha"\nexports_file = "{nfs_settings["ganesha"].exports_file}"\n'
        f'[smb]\ninclude_file = "{smb_settings.include_file}"\n'
    )
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(host))
    store = StateStore(tmp_path / "state")
    vms = {"vm1": vm_settings("vm1"), "off": vm_settings("off"), "down": vm_settings("down")}
    facts = {"vm1": lost_vm(), "off": fresh_vm("off", running=False)}
    facts["vm1"].guest.fstab_entries.pop("_text")

    def probe(self: Session, vm: str, targets: list[str]) -> VmFacts:
        if vm == "down":
            raise BackendUnavailable("cannot connect to libvirt", hint="start libvirtd")
        return facts[vm]

    monkeypatch.setattr(Session, "probe_vm", probe)
    return Session(vms, store)


def test_prune_finds_every_leftover_and_reports_what_it_could_not_look_at(session):
    state = State(shares={KEPT: record(KEPT)})
    plan, looked, unlooked = find_leftovers(state, session, "here")
    assert looked == ["vm1"]
    assert unlooked == [
        "VM down: cannot connect to libvirt",
        "VM off: the VM is off (its guest's mounts and fstab cannot be read): start it, "
        "prune again",
    ]
    assert [(s.layer, s.action, s.vm) for s in plan.steps] == [
        ("guest", "unmount", "vm1"),
        ("guest", "fstab_remove", "vm1"),
        ("guest", "remove_file", "vm1"),
        ("hypervisor", "detach_share", "vm1"),
        ("host", "nfs_unexport", ""),  # this machine's servers: Session.host of no VM
        ("host", "smb_unshare", ""),
    ]
    # the key comes from the guest path, which gives back the tag; the export is filed under it
    assert plan.removes == [LOST]
    assert all(KEPT_TAG not in json.dumps(s.args) for s in plan.steps)
    assert session.host("") is session.local_host


def test_a_record_made_on_another_machine_is_not_pruned_but_one_made_here_is(session, monkeypatch):
    from vmshare.facts import Capabilities

    vm = lost_vm(capabilities=Capabilities(records=True))
    vm.guest.fstab_entries.pop("_text")
    vm.records = {LOST_TAG: {"key": LOST, "host": "elsewhere", "target": "/mnt/lost"}}
    vm.persistent_devices, vm.running_devices = {}, {}
    monkeypatch.setattr(Session, "probe_vm", lambda self, name, targets: vm)
    session.vms = {"vm1": vm_settings("vm1")}
    state = State(shares={KEPT: record(KEPT)})
    plan, _, _ = find_leftovers(state, session, "here")
    assert not [s for s in plan.steps if s.vm == "vm1"]  # the other machine's share, whole
    vm.records[LOST_TAG]["host"] = "here"
    plan, _, _ = find_leftovers(state, session, "here")
    assert [s.action for s in plan.steps if s.vm == "vm1"] == [
        "unmount",
        "fstab_remove",
        "remove_file",
        "forget_share",
    ]


def test_a_9p_device_ends_with_a_restart_only_with_restart(session, monkeypatch):
    vm = fresh_vm("vm1")
    device = FsDevice(tag=LOST_TAG, source="/srv/lost", protocol="9p")
    vm.persistent_devices, vm.running_devices = {LOST_TAG: device}, {LOST_TAG: device}
    monkeypatch.setattr(Session, "probe_vm", lambda self, name, targets: vm)
    session.vms = {"vm1": vm_settings("vm1")}
    plan, _, _ = find_leftovers(State(), session, "here")
    assert [s.action for s in plan.steps if s.vm == "vm1"] == ["remove_file", "detach_share"]
    plan, _, _ = find_leftovers(State(), session, "here", allow_restart=True)
    assert [s.action for s in plan.steps if s.vm == "vm1"][1:] == ["detach_share", "restart"]
    device.protocol = "virtiofs"  # leaves the running VM at once: no restart
    plan, _, _ = find_leftovers(State(), session, "here", allow_restart=True)
    assert [s.action for s in plan.steps if s.vm == "vm1"][1:] == ["detach_share"]


def test_unreadable_host_settings_are_reported_and_the_vms_still_looked_into(
    session, tmp_path, monkeypatch
):
    from vmshare.prune import vms_to_search

    bad = tmp_path / "bad-host.toml"
    bad.write_text("[nfs\n")
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(bad))
    vms, problems = vms_to_search(State(shares={KEPT: record(KEPT)}), ["old"])
    assert sorted(vms) == ["old", "vm1"] and problems[0].startswith("host.toml: ")
    session.vms = {"vm1": vm_settings("vm1")}
    plan, looked, unlooked = find_leftovers(State(), session, "here")
    assert looked == ["vm1"] and plan.steps
    assert unlooked[0].startswith("this machine's NFS and Samba configs: ")


# ----------------------------------------------------------------------- the command itself


def vmshare(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


@pytest.fixture
def host_only(tmp_path, monkeypatch, files):
    """A state recording one share (its VM's libvirt cannot be reached) and ganesha's file
    holding it and a lost one; ganesha's pidfile names a process that takes the reload signal.
    (Samba's reload needs a running smbd: the integration test prunes a Samba share.)"""
    nfs_settings, _ = files
    catcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,time;signal.signal(signal.SIGHUP,signal.SIG_IGN);"
            "print('ready',flush=True);time.sleep(300)",
        ],
        stdout=subprocess.PIPE,
    )
    assert catcher.stdout is not None and catcher.stdout.readline() == b"ready\n"
    pidfile = tmp_path / "ganesha.pid"
    pidfile.write_text(f"{catcher.pid}\n")
    host = tmp_path / "host.toml"
    host.write_text(
        f'[nfs]\nexporter = "ganesha"\nexports_file = "{nfs_settings["ganesha"].exports_file}"\n'
        f'ganesha_pidfile = "{pidfile}"\nganesha_config = "{tmp_path / "ganesha-main.conf"}"\n'
        f'[smb]\ninclude_file = "{tmp_path / "no-samba.conf"}"\n'
    )
    monkeypatch.setenv("VMSHARE_HOST_CONFIG", str(host))
    monkeypatch.setenv("VMSHARE_STATE_DIR", str(tmp_path / "state"))
    store = StateStore(tmp_path / "state")
    store.save(State(shares={KEPT: record(KEPT, f"qemu:///system?socket={tmp_path}/no-sock")}))
    yield Path(nfs_settings["ganesha"].exports_file), store
    catcher.send_signal(signal.SIGKILL)
    catcher.wait()


def test_prune_asks_refuses_without_a_terminal_and_removes_with_yes(capsys, host_only):
    exports, store = host_only
    before = (exports.read_bytes(), store.path.read_bytes())

    code, out, err = vmshare(capsys, "prune", "--dry-run")
    assert code == 0, err
    assert f"remove the NFS export {LOST_TAG}" in out and "Dry run: nothing changed." in out
    assert "could not look: VM vm1: cannot connect to libvirt" in out
    assert KEPT_TAG not in out

    code, out, _ = vmshare(capsys, "prune", "--dry-run", "--json")
    data = json.loads(out)["data"]
    assert code == 0 and data["dry_run"] and data["done"] == []
    assert [s["action"] for s in data["plan"]["steps"]] == ["nfs_unexport"]
    assert data["could_not_look"][0].startswith("VM vm1: cannot connect to libvirt")

    code, _, err = vmshare(capsys, "prune")  # pytest's stdin is no terminal
    assert code == 2
    assert "prune would remove 1 share(s)" in err and "refusing without a terminal" in err
    assert "hint: see the plan with `vmshare prune --dry-run`" in err and "--yes" in err
    assert (exports.read_bytes(), store.path.read_bytes()) == before

    code, out, err = vmshare(capsys, "prune", "--yes", "--json")
    data = json.loads(out)["data"]
    assert code == 0, err
    assert data["done"] == [f"remove the NFS export {LOST_TAG}"]
    assert set(ownedblock.entries(exports.read_text())) == {KEPT_TAG}
    assert exports.read_text().startswith(USER_EXPORT)
    assert set(store.load().shares) == {KEPT}

    code, out, _ = vmshare(capsys, "prune")
    assert code == 0 and "Nothing to prune." in out


def at_a_terminal(answer: bytes, *args: str) -> tuple[int, str]:
    """Run vmshare with stdin, stdout and stderr on a pty; answer its question."""
    import os
    import pty
    import select
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmshare", *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    output, answered, deadline = b"", False, time.monotonic() + 60
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 0.2)[0]:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child exited and closed the pty
            break
        output += chunk
        if not answered and b"[y/n]" in output:
            os.write(master, answer)
            answered = True
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, output.decode("utf-8", "replace")


def test_prune_at_a_terminal_shows_the_steps_and_asks(host_only):
    exports, _ = host_only
    before = exports.read_bytes()
    code, text = at_a_terminal(b"n\n", "prune")
    assert code == 1, text
    assert f"remove the NFS export {LOST_TAG}" in text and "Remove 1 share(s)" in text
    assert exports.read_bytes() == before
    code, text = at_a_terminal(b"y\n", "prune")
    assert code == 0, text
    assert set(ownedblock.entries(exports.read_text())) == {KEPT_TAG}
