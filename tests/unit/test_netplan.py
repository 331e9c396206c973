import stat

import pytest
from factories import apply_journal, fresh_vm, spec_of

from vmshare.errors import UsageError
from vmshare.facts import Facts, GuestFacts, GuestMount, PathFact
from vmshare.formats import ownedblock
from vmshare.plan.network import HostServers, nat_warning
from vmshare.plan.removal import removal_plan
from vmshare.plan.resolve import resolve
from vmshare.protocols import mount_tag, nfs, smb
from vmshare.secret_value import Secret, redact
from vmshare.secrets import SecretStore
from vmshare.spec import HostSettings, NfsHost, SmbHost
from vmshare.state import State

USER_NET_WARNING = nat_warning("QEMU user networking", "127.0.0.1")


def servers(tmp_path):
    settings = HostSettings(
        nfs=NfsHost(exporter="ganesha", port=2050, exports_file=str(tmp_path / "exports.conf")),
        smb=SmbHost(port=4450, include_file=str(tmp_path / "vmshare.conf")),
    )
    return HostServers.from_settings(settings)


def net_vm(**kw):
    guest = GuestFacts(reachable=True, gateway="10.0.2.2", existing_dirs=[])
    return fresh_vm(user_networking=True, guest=guest, **kw)


def net_facts(spec, vm, exports=None):
    return Facts(
        host_paths={
            str(s.source): PathFact(exists=True, is_dir=True, uid=1000, gid=100) for s in spec.share
        },
        vms={vm.name: vm},
        exports=exports or {},
        user_names={1000: "dev", 0: "root"},
        group_names={100: "users", 0: "root"},
    )


def actions(plan):
    return [f"{s.layer}.{s.action}" for s in plan.steps]


def test_nfs_share_exports_to_the_vm_only_then_mounts(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="nfs"')
    plan = resolve(
        spec, net_facts(spec, net_vm()), State(), origin="cli", servers=servers(tmp_path)
    )
    assert actions(plan) == [
        "host.nfs_export",
        "guest.mkdir",
        "guest.mount",
        "guest.fstab_add",
        "guest.probe",
    ]
    export = plan.steps[0].args["export"]
    assert export["client"] == "127.0.0.1" and (export["anonuid"], export["anongid"]) == (1000, 100)
    assert USER_NET_WARNING in plan.choices[0].warnings
    assert "4.2" in plan.choices[0].reason
    mount = plan.steps[2].args
    assert mount["source"] == f"10.0.2.2:/vmshare/{mount_tag('testvm:/mnt/x')}"
    assert plan.steps[3].args["options"][-2:] == ["_netdev", "nofail"]
    assert plan.steps[0].undo.action == "nfs_unexport"


def test_nfs_owner_and_spec_addresses(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="nfs" owner="0:0"')
    spec.vm["testvm"] = spec.vm_for("testvm").model_copy(
        update={"client_address": "192.168.122.50", "host_address": "192.168.122.1"}
    )
    plan = resolve(
        spec, net_facts(spec, net_vm()), State(), origin="cli", servers=servers(tmp_path)
    )
    export = plan.steps[0].args["export"]
    assert export["client"] == "192.168.122.50" and export["anonuid"] == 0
    assert plan.steps[2].args["source"].startswith("192.168.122.1:")
    assert USER_NET_WARNING not in plan.choices[0].warnings


def test_vm_without_known_address_is_a_clear_error(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="nfs"')
    vm = fresh_vm(guest=GuestFacts(reachable=True))
    with pytest.raises(UsageError, match="cannot find the address") as info:
        resolve(spec, net_facts(spec, vm), State(), origin="cli", servers=servers(tmp_path))
    assert "client_address" in info.value.hint


def test_exported_and_mounted_share_plans_nothing(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="nfs"')
    srv = servers(tmp_path)
    first = resolve(spec, net_facts(spec, net_vm()), State(), origin="cli", servers=srv)
    export = nfs.NfsExport(**first.steps[0].args["export"])
    tag = mount_tag("testvm:/mnt/x")
    source = first.steps[2].args["source"]
    vm = net_vm()
    vm.guest.mounts["/mnt/x"] = GuestMount(
        source=source, target="/mnt/x", fstype="nfs4", options=[]
    )
    vm.guest.fstab_entries[tag] = "line"
    facts = net_facts(spec, vm, {"nfs": {tag: srv.nfs.render(export)}})
    journal = apply_journal(spec, first)
    assert resolve(spec, facts, journal, origin="cli", servers=srv).steps == []
    # the same objects without a journal that explains them are taken into a new journal
    adopted = resolve(spec, facts, State(), origin="cli", servers=srv)
    assert [s.action for s in adopted.steps] == ["nfs_export", "mount", "fstab_add", "probe"]


def test_smb_share_steps_never_carry_the_password(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="smb" readonly=true')
    plan = resolve(
        spec, net_facts(spec, net_vm()), State(), origin="cli", servers=servers(tmp_path)
    )
    assert actions(plan) == [
        "host.smb_account",
        "host.smb_share",
        "guest.mkdir",
        "guest.write_credentials",
        "guest.mount",
        "guest.fstab_add",
        "guest.probe",
    ]
    share = plan.steps[1].args["share"]
    assert share["readonly"] and share["force_user"] == "dev" and share["client"] == "127.0.0.1"
    assert "read-only is enforced by the server" in plan.choices[0].reason
    assert plan.steps[3].args["secret_name"] == "smb-vmshare"
    # the VM's settings in the journal record may name a password *reference*; steps name none
    steps = " ".join(step.model_dump_json() for step in plan.steps).lower()
    assert "password" not in steps.replace("password generated", "")


def test_smb_owner_without_a_name_is_refused(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="smb" owner="4242:4242" readonly=true')
    with pytest.raises(UsageError, match="force user"):
        resolve(spec, net_facts(spec, net_vm()), State(), origin="cli", servers=servers(tmp_path))


def test_removal_of_a_network_share_unexports_last(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="smb"')
    plan = resolve(
        spec, net_facts(spec, net_vm()), State(), origin="cli", servers=servers(tmp_path)
    )
    record = plan.records["testvm:/mnt/x"].model_copy(update={"steps": plan.steps})
    assert actions(removal_plan([record], allow_restart=True)) == [
        "guest.fstab_remove",
        "guest.unmount",
        "guest.remove_file",
        "guest.rmdir_empty",
        "host.smb_unshare",
        "host.smb_account_remove",
    ]


def test_ganesha_include_is_added_once_and_exports_round_trip(tmp_path, monkeypatch):
    main = tmp_path / "ganesha.conf"
    main.write_text("NFS_CORE_PARAM { Protocols = 4; }\n")
    settings = NfsHost(
        exporter="ganesha",
        exports_file=str(tmp_path / "exports.conf"),
        ganesha_config=str(main),
        ganesha_pidfile=str(tmp_path / "pid"),
    )
    exporter = nfs.GaneshaExporter(settings)
    hups = []
    monkeypatch.setattr(nfs.GaneshaExporter, "reload", lambda self: hups.append(1))
    one = nfs.NfsExport("vmshare-a", "/srv/a", "127.0.0.1", False, 1, 1)
    exporter.export(one)
    exporter.export(one)  # unchanged: no rewrite, no reload
    exporter.export(nfs.NfsExport("vmshare-b", "/srv/b", "127.0.0.1", True, 1, 1))
    assert main.read_text().count("%include") == 1
    assert set(exporter.entries()) == {"vmshare-a", "vmshare-b"} and len(hups) == 2
    exporter.unexport("vmshare-a")
    exporter.unexport("vmshare-b")
    # with the last export, ganesha's config is as vmshare found it
    assert main.read_text() == "NFS_CORE_PARAM { Protocols = 4; }\n"
    assert not (tmp_path / "exports.conf").exists() and len(hups) == 5


def test_ganesha_include_the_admin_wrote_is_kept_with_the_last_export(tmp_path, monkeypatch):
    main = tmp_path / "ganesha.conf"
    main.write_text('%include "exports.conf"\n')
    settings = NfsHost(
        exporter="ganesha",
        exports_file=str(tmp_path / "exports.conf"),
        ganesha_config=str(main),
        ganesha_pidfile=str(tmp_path / "pid"),
    )
    exporter = nfs.GaneshaExporter(settings)
    monkeypatch.setattr(nfs.GaneshaExporter, "reload", lambda self: None)
    exporter.export(nfs.NfsExport("vmshare-a", "/srv/a", "127.0.0.1", False, 1, 1))
    exporter.unexport("vmshare-a")
    assert main.read_text() == '%include "exports.conf"\n'
    assert (tmp_path / "exports.conf").exists()


def test_a_reload_failure_puts_the_previous_file_back(tmp_path, monkeypatch):
    settings = NfsHost(exporter="kernel", exports_file=str(tmp_path / "vmshare.exports"))
    exporter = nfs.KernelNfsExporter(settings)
    (tmp_path / "vmshare.exports").write_text("# before\n")
    calls = []

    def reload(self):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("exportfs said no")

    monkeypatch.setattr(nfs.KernelNfsExporter, "reload", reload)
    with pytest.raises(RuntimeError):
        exporter.export(nfs.NfsExport("vmshare-a", "/srv/a", "127.0.0.1", False, 1, 1))
    assert (tmp_path / "vmshare.exports").read_text() == "# before\n" and len(calls) == 2


def test_samba_include_goes_with_the_last_share(tmp_path, monkeypatch):
    conf = tmp_path / "smb.conf"
    conf.write_text("[global]\n\tworkgroup = X\n")
    original = conf.read_text()
    settings = SmbHost(smb_conf=str(conf), include_file=str(tmp_path / "vmshare.conf"))
    monkeypatch.setattr(smb.SambaExporter, "reload", lambda self: None)
    samba = smb.SambaExporter(settings)
    share = smb.SmbShare("vmshare-a", "/srv/a", "127.0.0.1", False, "vmshare", "root", "root", True)
    samba.share(share)
    assert f"include = {tmp_path / 'vmshare.conf'}" in conf.read_text()
    assert "[vmshare-a]" in ownedblock.entries((tmp_path / "vmshare.conf").read_text())["vmshare-a"]
    samba.unshare("vmshare-a")
    assert conf.read_text() == original
    assert not (tmp_path / "vmshare.conf").exists()


def test_secrets_are_private_stable_and_redacted(tmp_path):
    store = SecretStore(tmp_path)
    secret = store.get_or_create("smb-vmshare")
    assert store.get_or_create("smb-vmshare").reveal() == secret.reveal()
    path = tmp_path / "secrets" / "smb-vmshare"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert secret.reveal() not in repr(secret) and secret.reveal() not in f"{secret}"
    assert redact(f"oops {secret.reveal()} leaked") == "oops *** leaked"
    assert len(secret.reveal()) >= 40
    assert isinstance(secret, Secret)


def test_owner_who_cannot_write_the_folder_is_refused_before_anything_changes(tmp_path):
    spec = spec_of('/srv/x testvm:/mnt/x protocol="nfs" owner="4321:4321"')
    facts = net_facts(spec, net_vm())
    facts.host_paths["/srv/x"] = PathFact(exists=True, is_dir=True, uid=0, gid=0, mode=0o755)
    with pytest.raises(UsageError, match="cannot write") as info:
        resolve(spec, facts, State(), origin="cli", servers=servers(tmp_path))
    assert "chown" in info.value.hint
    facts.host_paths["/srv/x"] = PathFact(exists=True, is_dir=True, uid=0, gid=0, mode=0o777)
    assert resolve(spec, facts, State(), origin="cli", servers=servers(tmp_path)).steps
    readonly = spec_of('/srv/x testvm:/mnt/x protocol="nfs" owner="4321:4321" readonly=true')
    facts.host_paths["/srv/x"] = PathFact(exists=True, is_dir=True, uid=0, gid=0, mode=0o755)
    assert resolve(readonly, facts, State(), origin="cli", servers=servers(tmp_path)).steps
