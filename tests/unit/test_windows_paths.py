"""vmshare on a Windows host (issue 12, item 2), simulated in a fresh interpreter: fcntl, pwd,
grp (and the other POSIX-only modules) made unimportable by a meta-path blocker, os without
fchown/fchmod, pathlib's Windows flavour for the shorthand's paths, and platformdirs' Windows
rules for the state and config folders. The CLI, the spec, the core and the Hyper-V modules
load; ``vmshare add C:\\src devvm:/mnt/src`` splits at the VM's colon, not the drive's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import vmshare

SCRIPT = textwrap.dedent(
    r"""
    import importlib, importlib.abc, json, os, pathlib, pkgutil, sys, tempfile, types

    BLOCKED = {"fcntl", "pwd", "grp", "termios", "resource"}

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in BLOCKED:
                raise ImportError(f"No module named {name!r} (blocked: POSIX only)")
            return None

    for name in BLOCKED:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, Blocker())
    del os.fchown, os.fchmod  # absent on Windows (fchmod until Python 3.13)

    import vmshare.backends.hyperv as hyperv
    modules = ["vmshare.cli", "vmshare.spec", "vmshare.core", "vmshare.state", "vmshare.facts",
               "vmshare.apply", "vmshare.formats.powershell", "vmshare.backends.hyperv"]
    modules += [info.name for info in pkgutil.walk_packages(hyperv.__path__, hyperv.__name__ + ".")]
    for name in modules:
        importlib.import_module(name)
    out = {"modules": modules, "leaked": sorted(BLOCKED & set(sys.modules))}

    import vmshare.spec as spec
    # the split: the VM's colon, whatever colons the source holds (the source is its own
    # argument; a drive letter's colon never reaches parse_vm_target)
    out["shorthand"] = []
    for source, target in [("C:\\src", "devvm:/mnt/src"), ("D:/data/proj", "my-vm.1:/srv/p q")]:
        share, vm = spec.shorthand(source, target, backend="hyperv")
        out["shorthand"].append([str(share.source), share.vm, share.target, vm.backend])
    # anchoring with Windows' path rules (pathlib.Path is WindowsPath there): a drive path is
    # absolute and kept, a relative one is anchored at the current folder
    spec.Path = pathlib.PureWindowsPath
    base = pathlib.PureWindowsPath("C:\\Users\\me")
    raw = {"share": [{"source": s} for s in ("C:\\src", "D:/data", "src")]}
    out["anchored"] = [s["source"] for s in spec._resolve_sources(raw, base)["share"]]
    spec.Path = pathlib.Path

    import platformdirs, platformdirs.windows as windows
    windows.get_win_folder = lambda csidl: {
        "CSIDL_LOCAL_APPDATA": "C:\\Users\\me\\AppData\\Local",
        "CSIDL_APPDATA": "C:\\Users\\me\\AppData\\Roaming",
    }[csidl]
    platformdirs.PlatformDirs = windows.Windows
    from vmshare.state import default_state_dir
    out["state_dir"] = str(default_state_dir())
    out["host_config"] = str(spec.host_settings_path())

    import vmshare.facts as facts, vmshare.fsutil as fsutil
    host = types.SimpleNamespace(exists=True, uid=0, gid=0)
    found = types.SimpleNamespace(host_paths={"C:\\src": host}, user_names={}, group_names={})
    facts._names(found, types.SimpleNamespace(share=[]))
    out["names"] = [found.user_names, found.group_names]
    fsutil._WINDOWS = True
    with tempfile.TemporaryDirectory() as folder:
        target = pathlib.Path(folder) / "state.json"
        fsutil.atomic_write(target, b"one")
        fsutil.atomic_write(target, b"two", mode=0o600)
        out["written"] = target.read_text()
    print(json.dumps(out))
    """
)


def test_the_windows_user_s_paths_need_nothing_posix_only() -> None:
    src = str(Path(vmshare.__file__).parent.parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VMSHARE_")},
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert "vmshare.backends.hyperv.winrm" in out["modules"]
    assert out["leaked"] == []
    # a drive path is a Windows host's folder (Hyper-V), kept as Windows writes it on any OS
    assert out["shorthand"] == [
        ["C:\\src", "devvm", "/mnt/src", "hyperv"],
        ["D:\\data\\proj", "my-vm.1", "/srv/p q", "hyperv"],
    ]
    assert out["anchored"] == ["C:\\src", "D:\\data", "C:\\Users\\me\\src"]
    local = "C:\\Users\\me\\AppData\\Local"
    assert out["state_dir"].startswith(local) and "vmshare" in out["state_dir"]
    assert out["host_config"].startswith(local) and out["host_config"].endswith("host.toml")
    assert out["names"] == [{}, {}]
    assert out["written"] == "two"
