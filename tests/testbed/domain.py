"""Define, boot and drive the vmshare test guest through libvirt and its guest agent."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import libvirt
import libvirt_qemu

from .guest_image import GuestImage, build_image, new_etc_disk
from .libvirtd import quiet_libvirt

log = logging.getLogger(__name__)

KERNEL_CMDLINE = "console=ttyS0 loglevel=4"
AGENT_CHANNEL = "org.qemu.guest_agent.0"
# The optional ssh NIC: a second QEMU user network whose only way in is a hostfwd from the host's
# 127.0.0.1:PORT to the guest's dropbear. guest_init.sh finds it by this MAC (eth1, 10.0.3.15).
# Slot 0x1e of pci.0 is far above the slots libvirt gives its own and hot-plugged devices.
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
SSH_MAC = "52:54:00:73:73:68"
SSH_GUEST = "10.0.3.15"
SSH_HOST_KEY = "/etc/dropbear/dropbear_ed25519_host_key"
ET.register_namespace("qemu", QEMU_NS)


def domain_xml(
    name: str,
    image: GuestImage,
    etc_disk: Path,
    memory_mib: int = 256,
    console_log: Path | None = None,
    shared_memory: bool = True,
    acpi: bool = True,
    network: bool = True,
    extra_devices: Sequence[ET.Element] = (),
    ssh_port: int | None = None,
) -> str:
    """Libvirt XML for the test guest; extra_devices (e.g. filesystems) go into <devices>.

    With ssh_port, a second user-mode NIC forwards 127.0.0.1:ssh_port to the guest's port 22.
    """
    domain = ET.Element("domain", type="qemu")
    _text(domain, "name", name)
    _text(domain, "memory", str(memory_mib), unit="MiB")
    _text(domain, "vcpu", "1")
    if shared_memory:  # virtiofs needs it, and it cannot be added to a running domain
        backing = ET.SubElement(domain, "memoryBacking")
        ET.SubElement(backing, "source", type="memfd")
        ET.SubElement(backing, "access", mode="shared")
    os_el = ET.SubElement(domain, "os")
    _text(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _text(os_el, "kernel", str(image.kernel))
    _text(os_el, "initrd", str(image.initrd))
    _text(os_el, "cmdline", KERNEL_CMDLINE)
    features = ET.SubElement(domain, "features")
    if acpi:  # without ACPI, QEMU refuses PCI hot-plug on pci.0
        ET.SubElement(features, "acpi")
    ET.SubElement(domain, "clock", offset="utc")
    for event, action in (("poweroff", "destroy"), ("reboot", "restart"), ("crash", "destroy")):
        _text(domain, f"on_{event}", action)

    devices = ET.SubElement(domain, "devices")
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="raw")
    ET.SubElement(disk, "source", file=str(etc_disk))
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    if network:
        interface = ET.SubElement(devices, "interface", type="user")
        ET.SubElement(interface, "model", type="virtio")
    if console_log is not None:
        serial = ET.SubElement(devices, "serial", type="file")
        ET.SubElement(serial, "source", path=str(console_log))
    else:
        serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name=AGENT_CHANNEL)
    ET.SubElement(devices, "memballoon", model="none")
    devices.extend(extra_devices)
    if ssh_port is not None:  # libvirt 9.0 has no hostfwd for slirp: pass QEMU arguments
        commandline = ET.SubElement(domain, f"{{{QEMU_NS}}}commandline")
        netdev = (
            f"user,id=sshnet,net=10.0.3.0/24,restrict=on,"
            f"hostfwd=tcp:127.0.0.1:{ssh_port}-{SSH_GUEST}:22"
        )
        device = f"virtio-net-pci,netdev=sshnet,mac={SSH_MAC},bus=pci.0,addr=0x1e"
        for value in ("-netdev", netdev, "-device", device):
            ET.SubElement(commandline, f"{{{QEMU_NS}}}arg", value=value)
    return ET.tostring(domain, encoding="unicode")


def filesystem_element(source_dir: Path, tag: str, driver: str = "virtiofs") -> ET.Element:
    """A <filesystem>: driver "virtiofs" (passthrough) or "9p" (mapped, libvirt's path driver)."""
    if driver == "virtiofs":
        fs = ET.Element("filesystem", type="mount", accessmode="passthrough")
        ET.SubElement(fs, "driver", type="virtiofs")
    elif driver == "9p":
        fs = ET.Element("filesystem", type="mount", accessmode="mapped")
    else:
        raise ValueError(f"unknown filesystem driver {driver!r}")
    ET.SubElement(fs, "source", dir=str(source_dir))
    ET.SubElement(fs, "target", dir=tag)
    return fs


def boot_domain(
    uri: str,
    name: str,
    workdir: Path,
    image: GuestImage | None = None,
    memory_mib: int = 256,
    shared_memory: bool = True,
    acpi: bool = True,
    network: bool = True,
    extra_devices: Sequence[ET.Element] = (),
    persistent: bool = True,
    timeout: float = 180,
    ssh_port: int | None = None,
) -> tuple[libvirt.virDomain, float]:
    """(Re)create domain name with a fresh etc disk in workdir, boot it, wait for its agent.

    Persistent domains are defined then started, so that the persistent config can be edited.
    With ssh_port (see domain_xml), also wait until the guest's ssh server answers there.
    Returns the domain and the seconds from start to the first answered guest-ping (and ssh).
    """
    quiet_libvirt()
    image = image or build_image()
    destroy_domain(uri, name)
    workdir.mkdir(parents=True, exist_ok=True)
    etc_disk = workdir / f"{name}-etc.img"
    console_log = workdir / f"{name}-console.log"
    new_etc_disk(etc_disk)
    console_log.unlink(missing_ok=True)
    xml = domain_xml(
        name, image, etc_disk, memory_mib, console_log, shared_memory, acpi, network,
        extra_devices, ssh_port,
    )  # fmt: skip
    conn = libvirt.open(uri)
    started = time.monotonic()
    if persistent:
        dom = conn.defineXML(xml)
        dom.create()
    else:
        dom = conn.createXML(xml, 0)
    try:
        wait_for_agent(dom, timeout)
        if ssh_port is not None:
            wait_for_ssh(ssh_port, timeout - (time.monotonic() - started))
    except BaseException:
        destroy_domain(uri, name)
        raise
    return dom, time.monotonic() - started


def destroy_domain(uri: str, name: str) -> None:
    """Stop and undefine domain name; a missing domain is fine."""
    quiet_libvirt()
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(name)
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.undefine()
    except libvirt.libvirtError as e:
        if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise
    finally:
        conn.close()


def agent_command(
    dom: libvirt.virDomain, command: str, arguments: dict[str, Any] | None = None, timeout: int = 10
) -> Any:
    """Run one guest agent command and return its "return" value."""
    request: dict[str, Any] = {"execute": command}
    if arguments is not None:
        request["arguments"] = arguments
    reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), timeout, 0)
    return json.loads(reply)["return"]


def wait_for_agent(dom: libvirt.virDomain, timeout: float = 180) -> float:
    """Wait until the guest agent answers guest-ping; return the seconds waited."""
    quiet_libvirt()
    started = time.monotonic()
    while True:
        try:
            agent_command(dom, "guest-ping", timeout=5)
            return time.monotonic() - started
        except libvirt.libvirtError as e:
            error = e
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"guest agent of {dom.name()} silent for {timeout}s ({error}){console_tail(dom)}"
            )
        time.sleep(0.25)


def agent_exec(
    dom: libvirt.virDomain, argv: Sequence[str], stdin: bytes | None = None, timeout: float = 30
) -> tuple[int, bytes, bytes]:
    """Run argv in the guest (PATH lookup) and return (exit code, stdout, stderr).

    A command killed by a signal returns minus the signal number; a program that cannot be
    started raises libvirt.libvirtError; on timeout (TimeoutError) the command keeps running.
    """
    quiet_libvirt()
    arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
    if stdin is not None:
        arguments["input-data"] = base64.b64encode(stdin).decode()
    pid = agent_command(dom, "guest-exec", arguments)["pid"]
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        status = agent_command(dom, "guest-exec-status", {"pid": pid})
        if status["exited"]:
            code = status["exitcode"] if "exitcode" in status else -status.get("signal", 0)
            out = base64.b64decode(status.get("out-data", ""))
            err = base64.b64decode(status.get("err-data", ""))
            return code, out, err
        if time.monotonic() > deadline:
            raise TimeoutError(f"{list(argv)} still running in {dom.name()} after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def ssh_port(dom: libvirt.virDomain) -> int | None:
    """The host port that domain_xml(ssh_port=...) forwards to the guest's ssh server."""
    found = re.search(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-", dom.XMLDesc(0))
    return int(found.group(1)) if found else None


def wait_for_ssh(port: int, timeout: float = 60) -> float:
    """Wait until an ssh server greets on 127.0.0.1:port; return the seconds waited.

    QEMU's hostfwd accepts connections before the guest listens, so wait for the banner.
    """
    started = time.monotonic()
    while True:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ):
            if sock.recv(8).startswith(b"SSH-"):
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"no ssh server on 127.0.0.1:{port} after {timeout:.0f}s")
        time.sleep(0.25)


def authorize_ssh_key(dom: libvirt.virDomain, public_key: str) -> None:
    """Make public_key (OpenSSH format, one key a line) root's only authorized_keys, 0600.

    /root/.ssh points into the persistent /etc disk; synced, so the keys survive even a destroy.
    """
    script = "umask 077 && mkdir -p /root/.ssh && cat >/root/.ssh/authorized_keys && sync"
    text = public_key if public_key.endswith("\n") else public_key + "\n"
    code, _, err = agent_exec(dom, ["sh", "-c", script], stdin=text.encode())
    if code != 0:
        raise RuntimeError(f"cannot write authorized_keys: {err!r}")


def ssh_host_key(dom: libvirt.virDomain, port: int | None = None) -> str:
    """known_hosts text for the guest's ssh host key at [127.0.0.1]:port (default: its ssh port)."""
    port = port if port is not None else ssh_port(dom)
    if port is None:
        raise ValueError(f"{dom.name()} has no ssh port forward")
    code, out, err = agent_exec(dom, ["dropbearkey", "-y", "-f", SSH_HOST_KEY])
    lines = out.decode().splitlines()
    keys = [" ".join(line.split()[:2]) for line in lines if line.startswith(("ssh-", "ecdsa-"))]
    if code != 0 or not keys:
        raise RuntimeError(f"cannot read the guest's ssh host key ({code}): {err!r}")
    return "".join(f"[127.0.0.1]:{port} {key}\n" for key in keys)


def guest_boot_id(dom: libvirt.virDomain) -> str:
    code, out, err = agent_exec(dom, ["cat", "/proc/sys/kernel/random/boot_id"])
    if code != 0:
        raise RuntimeError(f"cannot read boot_id: {err!r}")
    return out.decode().strip()


def reboot_guest(dom: libvirt.virDomain, timeout: float = 180) -> float:
    """`reboot -f` in the guest; wait for the agent (and ssh) of the *new* boot; return seconds."""
    old = guest_boot_id(dom)
    started = time.monotonic()
    with contextlib.suppress(libvirt.libvirtError):  # the agent may die before it answers
        agent_command(dom, "guest-exec", {"path": "reboot", "arg": ["-f"]})
    while True:
        remaining = timeout - (time.monotonic() - started)
        wait_for_agent(dom, max(remaining, 0))
        try:
            if guest_boot_id(dom) != old:
                port = ssh_port(dom)
                if port is not None:
                    wait_for_ssh(port, max(timeout - (time.monotonic() - started), 0))
                return time.monotonic() - started
        except libvirt.libvirtError:
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{dom.name()} did not reboot in {timeout}s{console_tail(dom)}")
        time.sleep(0.25)


def console_tail(dom: libvirt.virDomain, lines: int = 30) -> str:
    """The last lines of the domain's file-backed serial console, for error messages."""
    try:
        source = ET.fromstring(dom.XMLDesc(0)).find("./devices/serial[@type='file']/source")
        path = Path(source.get("path", "")) if source is not None else None
        text = path.read_text(errors="replace") if path else ""
    except (libvirt.libvirtError, OSError):
        return ""
    if not text:
        return ""
    return f"\nconsole {path}:\n" + "\n".join(text.splitlines()[-lines:])


def _text(parent: ET.Element, tag: str, text: str, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    element.text = text
    return element


def guest_seconds(dom: libvirt.virDomain, script: str, *args: str, timeout: float = 600) -> float:
    """Seconds ``sh -c script`` took in the guest, timed there by busybox ``time`` (so the
    agent's round trip is not counted); the benchmarks' one timer of guest work."""
    code, _, err = agent_exec(dom, ["time", "sh", "-c", script, "sh", *args], timeout=timeout)
    if code != 0:
        raise RuntimeError(f"guest command failed: {err.decode(errors='replace')}")
    match = re.search(r"real\s+(\d+)m\s*([\d.]+)s", err.decode())
    if not match:
        raise RuntimeError(f"no timing in {err!r}")
    return int(match.group(1)) * 60 + float(match.group(2))
