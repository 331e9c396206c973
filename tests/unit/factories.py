"""Facts as the libvirt backend and the guest probe report them, built by hand for plan tests."""

from __future__ import annotations

from pathlib import Path

from vmshare.backends.libvirt import capabilities as libvirt
from vmshare.facts import Facts, FsDevice, GuestFacts, GuestMount, PathFact, VmFacts
from vmshare.plan.model import Plan
from vmshare.plan.resolve import resolve
from vmshare.protocols import mount_tag
from vmshare.spec import Spec, parse_spec
from vmshare.state import State


def spec_of(*shares: str, base: Path = Path("/")) -> Spec:
    """Spec from 'SRC VM:DST [key=value ...]' lines."""
    text = ""
    for line in shares:
        source, vm_target, *options = line.split()
        vm, _, target = vm_target.partition(":")
        text += f'[[share]]\nsource = "{source}"\nvm = "{vm}"\ntarget = "{target}"\n'
        text += "".join(f"{o.split('=')[0]} = {o.split('=')[1]}\n" for o in options)
    return parse_spec(text, base=base)


LIBVIRT_FLAGS = ("acpi", "shared_memory_config", "shared_memory_live", "user_networking")


def fresh_vm(name: str = "testvm", **kw: object) -> VmFacts:
    """A running libvirt VM; ``acpi``, ``shared_memory_config``, ``shared_memory_live`` and
    ``user_networking`` go through the libvirt backend's own capabilities function."""
    flags = {"acpi": True, "shared_memory_config": True, "shared_memory_live": True}
    flags["user_networking"] = False
    flags.update({k: bool(kw.pop(k)) for k in LIBVIRT_FLAGS if k in kw})
    values: dict[str, object] = dict(
        name=name,
        backend="libvirt",
        connection="qemu:///system",
        exists=True,
        uuid="00000000-0000-0000-0000-000000000001",
        running=True,
        guest=GuestFacts(reachable=True, channel="qemu-guest-agent", existing_dirs=[]),
    )
    values.update(kw)
    running = bool(values["running"])
    values["capabilities"] = libvirt.capabilities(running=running, **flags)
    values.setdefault("find_hint", libvirt.find_hint("qemu:///system"))
    values.setdefault("guest_hint", libvirt.guest_hint(name))
    return VmFacts.model_validate(values)


def facts_for(spec: Spec, vm: VmFacts, *, sources_exist: bool = True) -> Facts:
    return Facts(
        host_paths={
            str(s.source): PathFact(exists=sources_exist, is_dir=sources_exist) for s in spec.share
        },
        vms={vm.name: vm},
    )


def applied_vm(spec: Spec, protocol: str = "virtiofs", **kw: object) -> VmFacts:
    """Facts of a VM on which every share of ``spec`` is fully in place."""
    devices, mounts, entries = {}, {}, {}
    for share in spec.share:
        tag = mount_tag(share.key)
        devices[tag] = FsDevice(
            tag=tag, source=str(share.source), protocol=protocol, readonly=share.readonly
        )
        mounts[share.target] = GuestMount(
            source=tag, target=share.target, fstype=protocol, options=["rw"]
        )
        entries[tag] = f"{tag} {share.target} {protocol} rw,nofail 0 0"
    guest = GuestFacts(
        reachable=True,
        mounts=mounts,
        fstab_entries=entries,
        existing_dirs=[s.target for s in spec.share],
    )
    return fresh_vm(persistent_devices=devices, running_devices=dict(devices), guest=guest, **kw)


def apply_journal(spec: Spec, plan: Plan) -> State:
    """The state an apply of ``plan`` leaves (every step journalled)."""
    state = State()
    for step in plan.steps:
        record = state.shares.setdefault(step.share, plan.records[step.share].model_copy(deep=True))
        record.steps.append(step)
    return state


def applied_state(spec: Spec) -> State:
    """The journal of ``spec`` applied to a fresh VM (matches ``applied_vm(spec)``)."""
    plan = resolve(spec, facts_for(spec, fresh_vm()), State(), origin="cli")
    return apply_journal(spec, plan)
