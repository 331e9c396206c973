"""Suite-wide rule: in CI (CI=true) a skipped test fails the run, so a missing service is seen.

One exemption, and only one: a test marked ``lab`` (it needs a real hypervisor that cannot run
here: a vCenter/ESXi lab, Workstation/Fusion, VirtualBox, a Hyper-V host; see docs/testing.md)
may skip, with exactly the reason ``lab_reason(VAR)`` for one of ``LABS``, i.e. because the
variable that names that lab is unset. Any other skip, a lab test's included, still fails CI.
Self-contained (tests/unit/test_ci_skip_rule.py runs it as the conftest of inner sessions).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest

LAB_MARKER = "lab"
# The variable that points a lab test at a real hypervisor, and what it names.
LABS = {
    "VMSHARE_VSPHERE_URL": "vSphere lab",
    "VMSHARE_VMRUN": "VMware Workstation/Fusion",
    "VMSHARE_VBOX": "VirtualBox",
    "VMSHARE_HYPERV_URL": "Hyper-V host",
}


def lab_reason(variable: str) -> str:
    """The one skip reason a lab test may give: its lab's variable is unset."""
    return f"{variable} is unset: no {LABS[variable]} to test against"


LAB_SKIP_REASON = lab_reason("VMSHARE_VSPHERE_URL")
LAB_SKIP_REASONS = frozenset(lab_reason(variable) for variable in LABS)


def lab_skip(report: Any) -> bool:
    """A lab test's documented skip: marked ``lab``, skipped for exactly one lab's reason."""
    if LAB_MARKER not in getattr(report, "keywords", {}):
        return False
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(reason).removeprefix("Skipped: ") in LAB_SKIP_REASONS


def ci_failing_skips(skipped: Sequence[Any]) -> list[Any]:
    """The skips that fail a CI run: all but the lab tests' documented one."""
    return [report for report in skipped if not lab_skip(report)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    failing = ci_failing_skips(skipped)
    if failing and exitstatus == 0:
        exempt = len(skipped) - len(failing)
        note = f" ({exempt} lab test(s) without a lab are allowed)" if exempt else ""
        reporter.write_line(f"CI: {len(failing)} test(s) skipped; in CI every test must run{note}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
