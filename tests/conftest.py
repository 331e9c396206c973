"""Suite-wide rule: in CI (CI=true) a skipped test fails the run, so a missing service is seen.

The test bed's fixtures (guest, servers, vmshare, ssh_guest...) are a plugin, so that
tests/integration and tests/contract share one guest and one pair of servers per session.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.testbed.fixtures"]
# the contract suites' tests live in modules whose names do not start with test_
pytest.register_assert_rewrite("tests.contract")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every test must run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
