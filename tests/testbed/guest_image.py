"""Build, and cache, the busybox initramfs that boots the vmshare test guest."""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_ENV = "VMSHARE_TESTBED_CACHE"
KERNEL_ENV = "VMSHARE_TESTBED_KERNEL"
DEFAULT_CACHE = Path("/var/cache/vmshare-testbed")
INIT_SCRIPT = Path(__file__).with_name("guest_init.sh")
BUSYBOX = Path("/usr/bin/busybox")
QEMU_GA = Path("/usr/sbin/qemu-ga")
# The real mount helpers. busybox mount does nfs4 itself and runs /sbin/mount.TYPE only when
# its own mount(2) failed; cifs with credentials= (a helper option) always needs mount.cifs.
MOUNT_HELPERS = (Path("/sbin/mount.nfs"), Path("/sbin/mount.cifs"))
HELPER_LINKS = {"sbin/mount.nfs4": "mount.nfs", "sbin/mount.smb3": "mount.cifs"}
# The test bed's stand-in helpers, installed as they are (the VirtualBox bed's mount.vboxsf).
STAND_INS = {"sbin/mount.vboxsf": Path(__file__).with_name("vbox") / "mount_vboxsf.sh"}
# The ssh server (root, public keys only); guest_init.sh makes its host key on the /etc disk.
SSH_SERVER = (Path("/usr/sbin/dropbear"), Path("/usr/bin/dropbearkey"))
# Run-time data of the helpers' libraries (libtirpc reads netconfig), copied from the host.
HOST_ETC_FILES = ("netconfig", "services", "protocols")
PACKAGES = ("busybox-static", "qemu-guest-agent", "nfs-common", "cifs-utils", "dropbear-bin")
# The Workstation/Fusion stand-ins (tests/testbed/vmrun/guest): vmhgfs-fuse, which mounts the
# virtiofs device the vmrun stand-in plugged for a folder, the mount.fuse step that runs it
# for an fstab line, and mount.vmhgfs, the old kernel client's mount program.
HGFS_STAND_INS = {
    "usr/bin/vmhgfs-fuse": Path(__file__).with_name("vmrun") / "guest" / "vmhgfs-fuse",
    "sbin/mount.fuse.vmhgfs-fuse": Path(__file__).with_name("vmrun")
    / "guest"
    / "mount.fuse.vmhgfs-fuse",
    # the old kernel module's mount program, for guests without vmhgfs-fuse
    "sbin/mount.vmhgfs": Path(__file__).with_name("vmrun") / "guest" / "mount.vmhgfs",
}


# Loaded in this order by the guest's /init (modprobe pulls in their dependencies).
REQUIRED_MODULES = (
    "virtio_pci", "virtio_blk", "virtio_console", "virtio_net", "ext4",
    "fuse", "virtiofs", "9pnet_virtio", "9p", "nfsv4", "cifs",
)  # fmt: skip
# cifs allocates these ciphers and hashes at mount time; taken when this kernel has them.
OPTIONAL_MODULES = (
    "cmac", "aesni_intel", "aes_generic", "ccm", "gcm", "ctr", "ghash_generic", "gf128mul",
    "sha256_generic", "sha256_ssse3", "sha512_generic", "sha512_ssse3", "md4", "md5", "hmac",
    "arc4", "libarc4", "ecb", "des_generic", "libdes", "nls_utf8",
)  # fmt: skip

# qemu-ga's guest-shutdown runs /sbin/shutdown, which busybox does not provide.
SHUTDOWN_SCRIPT = """#!/bin/sh
sync
case " $* " in
    *" -r "*) exec reboot -f ;;
    *" -H "*) exec halt -f ;;
    *) exec poweroff -f ;;
esac
"""
ETC_FILES = {
    "hostname": "testvm\n",
    "passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "group": "root:x:0:\n",
    "hosts": "127.0.0.1\tlocalhost\n127.0.1.1\ttestvm\n10.0.2.2\thost\n",
    "resolv.conf": "nameserver 10.0.2.3\n",
    "shells": "/bin/sh\n",
}
# Device nodes the kernel needs before /init mounts devtmpfs: (path, major, minor).
DEVICE_NODES = (("dev/console", 5, 1), ("dev/null", 1, 3))


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    recipe_hash: str
    kernel_version: str


def build_image(cache_dir: Path | None = None) -> GuestImage:
    """Return the cached guest image, building it first when the recipe changed."""
    root = cache_root(cache_dir)
    kver = kernel_version()
    digest = recipe_hash(kver)
    image = _image_at(root / digest, digest, kver)
    if _is_complete(image):
        return image
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        if _is_complete(image):
            return image
        for leftover in root.glob(".build-*"):  # from a builder that died: we hold the lock
            shutil.rmtree(leftover, ignore_errors=True)
        started = time.monotonic()
        log.info("building guest image %s for kernel %s", digest[:12], kver)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        tmp.chmod(0o755)
        try:
            _build_into(tmp, kver)
            (tmp / "recipe.json").write_text(json.dumps(recipe(kver), indent=1, sort_keys=True))
            shutil.rmtree(root / digest, ignore_errors=True)
            os.rename(tmp, root / digest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("built guest image in %.1fs: %s", time.monotonic() - started, root / digest)
    return image


def new_etc_disk(path: Path, size_mb: int = 16) -> None:
    """Create (or overwrite) an empty ext4 filesystem image file at path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
    _run([mkfs, "-F", "-q", "-L", "testbed-etc", str(path)])


def cache_root(cache_dir: Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def kernel_version() -> str:
    """The newest kernel in /boot that has modules installed, or $VMSHARE_TESTBED_KERNEL."""
    forced = os.environ.get(KERNEL_ENV)
    if forced:
        return forced
    found = [
        p.name.removeprefix("vmlinuz-")
        for p in Path("/boot").glob("vmlinuz-*")
        if Path("/lib/modules", p.name.removeprefix("vmlinuz-"), "modules.dep").exists()
    ]
    if not found:
        raise RuntimeError("no /boot/vmlinuz-* with modules: apt-get install linux-image-amd64")
    return max(found, key=_version_key)


def recipe(kver: str) -> dict[str, object]:
    packages = (*PACKAGES, f"linux-image-{kver}")
    return {
        "init": INIT_SCRIPT.read_text(),
        "builder": Path(__file__).read_text(),
        "kernel": kver,
        "packages": {name: _dpkg_version(name) for name in packages},
        "host_etc": {name: _file_digest(Path("/etc", name)) for name in HOST_ETC_FILES},
        "stand_ins": {
            name: _file_digest(path) for name, path in {**STAND_INS, **HGFS_STAND_INS}.items()
        },
    }


def recipe_hash(kver: str) -> str:
    text = json.dumps(recipe(kver), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _image_at(directory: Path, digest: str, kver: str) -> GuestImage:
    return GuestImage(directory / "vmlinuz", directory / "initrd.img", digest, kver)


def _is_complete(image: GuestImage) -> bool:
    return image.kernel.is_file() and image.initrd.is_file()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_into(out: Path, kver: str) -> None:
    tree = out / "root"
    _make_tree(tree, kver)
    with (
        open(out / "initrd.img", "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
    ):
        _write_newc(tree, gz.write)
    shutil.copyfile(f"/boot/vmlinuz-{kver}", out / "vmlinuz")
    shutil.rmtree(tree)


def _make_tree(tree: Path, kver: str) -> None:
    for name in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run",
                 "tmp", "mnt", "root", "var", "lib/testbed", "lib64"):  # fmt: skip
        (tree / name).mkdir(parents=True, exist_ok=True)
    (tree / "var/run").symlink_to("/run")
    _install_busybox(tree)
    _install_executable(tree / "sbin/shutdown", SHUTDOWN_SCRIPT.encode())
    for name, path in STAND_INS.items():
        _install_executable(tree / name, path.read_bytes())
    for program in (QEMU_GA, *MOUNT_HELPERS, *SSH_SERVER):
        _install_with_libs(tree, program)
    for name, path in HGFS_STAND_INS.items():
        _install_executable(tree / name, path.read_bytes())
    for link, target in HELPER_LINKS.items():
        (tree / link).unlink(missing_ok=True)
        (tree / link).symlink_to(target)
    (tree / "var/lib/nfs/sm").mkdir(parents=True)
    loadable = _install_modules(tree, kver)
    for name, wanted in (("modules", REQUIRED_MODULES), ("modules.optional", OPTIONAL_MODULES)):
        chosen = [m for m in wanted if m in loadable]
        (tree / "lib/testbed" / name).write_text("".join(f"{m}\n" for m in chosen))
    for name, text in ETC_FILES.items():
        (tree / "etc" / name).write_text(text)
    for name in HOST_ETC_FILES:
        if Path("/etc", name).is_file():
            shutil.copyfile(Path("/etc", name), tree / "etc" / name)
    (tree / "etc/mtab").symlink_to("/proc/self/mounts")
    _install_executable(tree / "init", INIT_SCRIPT.read_bytes())


def _install_executable(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)  # never write through a busybox applet link
    dest.write_bytes(data)
    dest.chmod(0o755)


def _install_busybox(tree: Path) -> None:
    _install_executable(tree / "bin/busybox", BUSYBOX.read_bytes())
    applets = _run([str(BUSYBOX), "--list-full"]).split()
    for rel in applets:
        link = tree / rel
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")


def _install_with_libs(tree: Path, program: Path) -> None:
    """Copy program and every shared library ldd resolves for it (loader included)."""
    _install_executable(tree / program.relative_to("/"), program.read_bytes())
    for lib in re.findall(r"(/\S+) \(0x", _run(["ldd", str(program)])):
        _install_executable(tree / lib.lstrip("/"), Path(lib).read_bytes())


def _install_modules(tree: Path, kver: str) -> list[str]:
    """Copy the modules (with dependencies), decompressed, and depmod them; return loadable."""
    src_root = Path("/lib/modules", kver)
    dst_root = tree / "lib/modules" / kver
    loadable: list[str] = []
    for name in REQUIRED_MODULES + OPTIONAL_MODULES:
        files = _module_files(kver, name)
        if files is None:
            if name in REQUIRED_MODULES:
                raise RuntimeError(f"kernel {kver} has no module {name}")
            continue
        for src in files:
            dst = dst_root / _strip_compression(str(src.relative_to(src_root)))
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(_decompressed(src))
        if files:
            loadable.append(name)
    for meta in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (src_root / meta).exists():
            text = (src_root / meta).read_bytes()
            if meta == "modules.order":
                text = re.sub(rb"\.ko\.(xz|zst|gz)$", b".ko", text, flags=re.M)
            (dst_root / meta).write_bytes(text)
    _run(["depmod", "-b", str(tree), kver])
    return loadable


def _module_files(kver: str, name: str) -> list[Path] | None:
    """Module files to insert for name, in order; [] if built in; None if it does not exist."""
    proc = subprocess.run(
        ["modprobe", "-S", kver, "--show-depends", name], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None
    lines = proc.stdout.splitlines()
    return [Path(line.split()[1]) for line in lines if line.startswith("insmod ")]


def _strip_compression(rel: str) -> str:
    return re.sub(r"\.ko\.(xz|zst|gz)$", ".ko", rel)


def _decompressed(src: Path) -> bytes:
    if src.suffix == ".xz":
        return lzma.decompress(src.read_bytes())
    if src.suffix == ".gz":
        return gzip.decompress(src.read_bytes())
    if src.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(src)], capture_output=True, check=True).stdout
    return src.read_bytes()


def _write_newc(tree: Path, write: Callable[[bytes], object]) -> None:
    """Write tree as a cpio "newc" archive owned by root, plus DEVICE_NODES."""
    inode = 0

    def entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nonlocal inode
        inode += 1
        encoded = name.encode() + b"\0"
        fields = (inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields) + encoded
        write(header + b"\0" * (-len(header) % 4))
        write(data + b"\0" * (-len(data) % 4))

    def walk(directory: Path, prefix: str) -> None:
        for child in sorted(directory.iterdir()):
            name = prefix + child.name
            st = child.lstat()
            if stat.S_ISDIR(st.st_mode):
                entry(name, st.st_mode)
                walk(child, name + "/")
            elif stat.S_ISLNK(st.st_mode):
                entry(name, st.st_mode, os.readlink(child).encode())
            else:
                entry(name, st.st_mode, child.read_bytes())

    walk(tree, "")
    for name, major, minor in DEVICE_NODES:
        entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))
    entry("TRAILER!!!", 0)


def _dpkg_version(package: str) -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    parts = re.findall(r"\d+|[^\d.-]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout
