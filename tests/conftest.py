"""The suite's plugins: the CI rule that fails a run that skipped a test (tests/ci_rule.py) and
the test bed's fixtures (guest, servers, vmshare, ssh_guest, vcsim...), so that
tests/integration and tests/contract share one guest and one pair of servers per session.
"""

import pytest

pytest_plugins = ["tests.testbed.fixtures", "tests.testbed.wsman.fixture", "tests.ci_rule"]
# the contract suites' tests live in modules whose names do not start with test_
pytest.register_assert_rewrite("tests.contract")
