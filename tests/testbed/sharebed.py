"""One guest and both loopback file servers, with shares made by the real vmshare CLI: the set-up
that benchmarks/semantics.py and benchmarks/visibility.py measure in."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import libvirt

from .domain import boot_domain, destroy_domain
from .guest_image import build_image
from .libvirtd import ensure_libvirtd
from .servers import Ganesha, Samba

URI = "qemu:///system"
PROTOCOLS = ("virtiofs", "9p", "nfs", "smb")


@dataclass
class ShareBed:
    dom: libvirt.virDomain
    name: str
    work: Path
    env: dict[str, str]
    boot_seconds: float

    def vmshare(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "vmshare.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"vmshare {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def share(self, protocol: str, *options: str) -> tuple[Path, str]:
        """A new host folder shared with vmshare at /mnt/PROTOCOL: (host dir, guest dir)."""
        src = self.work / f"src-{protocol}"
        src.mkdir(exist_ok=True)
        if protocol in ("nfs", "smb"):  # vmshare squashes to the owner, never to root unasked
            os.chown(src, *NETWORK_OWNER)
        target = f"/mnt/{protocol}"
        self.vmshare(
            "add", str(src), f"{self.name}:{target}", "--protocol", protocol, "--restart", *options
        )
        return src, target

    def unshare(self, protocol: str) -> None:
        """Remove the share; once more after a pause if a probe's process still held the mount
        (the removal resumes where it stopped)."""
        try:
            self.vmshare("remove", f"{self.name}:/mnt/{protocol}", "--restart")
        except RuntimeError:
            time.sleep(5)
            self.vmshare("remove", f"{self.name}:/mnt/{protocol}", "--restart")


# www-data: not root, and a name Samba can force (its guest account, nobody, gets guest rights)
NETWORK_OWNER = (33, 33)


@contextlib.contextmanager
def share_bed(
    name: str, memory_mib: int = 512, extra_devices: Sequence[ET.Element] = ()
) -> Iterator[ShareBed]:
    """extra_devices: more <filesystem> devices the guest boots with (benchmarks/defaults.py)."""
    ensure_libvirtd(URI)
    work = Path(tempfile.mkdtemp(prefix=f"vmshare-{name}-"))
    work.chmod(0o755)  # the network shares' non-root owner must reach its folder
    with Ganesha.start(work / "ganesha") as ganesha, Samba.start(work / "samba") as samba:
        host_config = work / "host.toml"
        host_config.write_text(
            f'[nfs]\nexporter = "ganesha"\nport = {ganesha.port}\n'
            f'exports_file = "{ganesha.exports_path}"\nganesha_config = "{ganesha.config_path}"\n'
            f'ganesha_pidfile = "{ganesha.pidfile}"\n'
            f'[smb]\nport = {samba.port}\nsmb_conf = "{samba.config_path}"\n'
            f'include_file = "{work / "samba" / "vmshare.conf"}"\n'
        )
        env = {
            **os.environ,
            "VMSHARE_STATE_DIR": str(work / "state"),
            "VMSHARE_HOST_CONFIG": str(host_config),
        }
        dom, boot = boot_domain(
            URI,
            name,
            Path("/var/tmp/vmshare-testbed") / name,
            build_image(),
            memory_mib,
            extra_devices=extra_devices,
        )
        try:
            yield ShareBed(dom, name, work, env, boot)
        finally:
            destroy_domain(URI, name)
