"""A Windows user loads vmshare: no module imports a POSIX-only module (fcntl, pwd, grp) at
its top, and ``vmshare --help`` works. Simulated by making those imports fail in a fresh
interpreter (``sys.modules[name] = None`` makes ``import name`` raise ImportError)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import vmshare

POSIX_ONLY = ("fcntl", "pwd", "grp", "termios", "resource")

SCRIPT = textwrap.dedent(
    """
    import sys
    for name in {posix_only!r}:
        sys.modules[name] = None
    import importlib, pkgutil
    import vmshare
    failed = []
    for info in pkgutil.walk_packages(vmshare.__path__, "vmshare."):
        if info.name == "vmshare.backends.libvirt" or info.name.startswith(
            "vmshare.backends.libvirt."
        ):
            continue  # needs the libvirt SDK, which a Windows host does not have
        if info.name == "vmshare.__main__":
            continue  # runs the command line when imported; main() below is the same
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            failed.append(f"{{info.name}}: {{exc}}")
    print("\\n".join(failed))
    if failed:
        sys.exit(3)
    from vmshare.cli import main
    main(["--help"])
    """
).format(posix_only=POSIX_ONLY)


def test_every_module_and_help_load_without_posix_only_modules():
    src = str(Path(vmshare.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Usage" in result.stdout
