"""PowerShell scripts built from hostile values: the Hyper-V host (backends/hyperv/scripts.py,
psdirect.py), the Windows SMB exporter (protocols/smb_windows.py, which plan/windows_host.py
drives) and the Windows guest (guest/windows.py).

Each script is rendered twice: with hostile values, and with a benign twin of each value (every
character that is not an ASCII letter, digit or path separator turned into 'x', so validation and
path splitting see the same shape). The repo's quote scanner (tests/unit/test_powershell.py:
PowerShell's five single quotes, doubled quotes) must find the same code outside the literals in
both, the same number of literals, and each hostile literal must be its twin's character for
character; tree-sitter-powershell must parse the script without error. Or the value is refused
with a UsageError."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given

from tests.property import hostile
from tests.unit.test_powershell import parse, scan
from vmshare.backends.hyperv import psdirect, scripts
from vmshare.errors import UsageError
from vmshare.formats import powershell as ps
from vmshare.guest.windows import WindowsGuest
from vmshare.protocols.smb_windows import WindowsSmbExporter

RENDERER = "PowerShell"


class NoRunner:
    def run(self, script, *, timeout=120):
        raise AssertionError("nothing runs here")


SMB = WindowsSmbExporter(NoRunner())
W = WindowsGuest
CRED = "credentials=/etc/vmshare/vmshare-ab12.cred"
# (label, render(name, path, account)): every script generator that takes an outside value
CASES = {
    "vm": lambda n, p, a: scripts.vm_script(n),
    "power": lambda n, p, a: scripts.power_script(n, stop_first=True),
    "neighbor": lambda n, p, a: scripts.neighbor_script([n, a]),
    "host_address": lambda n, p, a: scripts.host_address_script(n),
    "path": lambda n, p, a: scripts.path_script(p, [p + "\\sub"]),
    "mkdir": lambda n, p, a: scripts.mkdir_script(p),
    "rmdir": lambda n, p, a: scripts.rmdir_script(p),
    "account": lambda n, p, a: scripts.account_script(a),
    "account_query": lambda n, p, a: scripts.account_query_script(a),
    "account_remove": lambda n, p, a: scripts.account_remove_script(a),
    "rights": lambda n, p, a: scripts.rights_script(p, a, True),
    "unrights": lambda n, p, a: scripts.unrights_script(n, a, p),
    "psdirect_host": lambda n, p, a: psdirect.host_script(n, a),
    "smb_share": lambda n, p, a: SMB.share_script(n, p, a, False),
    "smb_unshare": lambda n, p, a: SMB.unshare_script(n),
    "smb_exists": lambda n, p, a: SMB.exists_script(n),
    "guest_inspect": lambda n, p, a: W.script(W.inspect_lines([p])),
    "guest_rmdir": lambda n, p, a: W.script(W.rmdir_lines(p, [p + "\\x"])),
    "guest_mount": lambda n, p, a: W.script(W.mount_lines(f"//h/{n}", p, [CRED], True)),
    "guest_probe": lambda n, p, a: W.script(W.probe_lines(p, True, "0123abcd")),
    "guest_fstab_add": lambda n, p, a: W.script(W.fstab_add_lines("e1", f"//h/{n}", p, [CRED])),
    "guest_credentials": lambda n, p, a: W.script(W.write_credentials_lines(p, a)),
    "guest_remove_file": lambda n, p, a: W.script(W.remove_file_lines(p)),
    "command": lambda n, p, a: ps.script(ps.command("Write-Output", n, p, Path=a, List=[n, a])),
}


def twin(value: str) -> str:
    return "".join(c if (c.isascii() and c.isalnum()) or c in "\\/:." else "x" for c in value)


def render(case: str, name: str, path: str, account: str) -> str | None:
    try:
        return CASES[case](name, path, account)
    except (UsageError, ValueError):
        return None  # refused, with vmshare's message


@pytest.mark.parametrize("case", sorted(CASES))
@given(name=hostile.nonempty, path=hostile.windows_path, account=hostile.nonempty)
@example(name="it's", path="C:\\\u2018; calc; \u2018", account="DOM\\o\u201bbrien")
@example(name="$(calc)`n@'", path="C:\\x\n'@\\y", account="a\u2019; Remove-Item C:\\ #")
@example(name="-Force", path="C:\\-Recurse", account="--%")
def test_hostile_values_stay_inside_their_literals(case, name, path, account):
    benign = render(case, twin(name), twin(path), twin(account))
    assume(benign is not None)  # a value of this shape is refused whatever it holds
    hostile.tally(RENDERER)
    evil = render(case, name, path, account)
    if evil is None:
        return
    benign_literals, benign_code = scan(benign)
    evil_literals, evil_code = scan(evil)
    assert evil_code == benign_code
    assert len(evil_literals) == len(benign_literals)
    for got, plain in zip(evil_literals, benign_literals, strict=True):
        # constant text stays itself, each value character stands where its twin stands
        assert len(got) == len(plain)
        assert all(g == b or twin(g) == b for g, b in zip(got, plain, strict=True))
    assert not parse(evil).has_error
