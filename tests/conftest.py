"""The suite's plugins: the CI rule that fails a run that skipped a test (tests/ci_rule.py) and
the test bed's fixtures (guest, servers, vmshare, ssh_guest, vcsim...), so that
tests/integration and tests/contract share one guest and one pair of servers per session.

Hypothesis profiles (tests/property): ``ci`` when CI is set (few examples, the property suite
stays under a minute), ``dev`` otherwise, ``hostile`` (scripts/hostile: the full count);
VMSHARE_HYPOTHESIS_PROFILE picks one by name.
"""

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.testbed.fixtures", "tests.testbed.wsman.fixture", "tests.ci_rule"]
# the contract suites' tests live in modules whose names do not start with test_
pytest.register_assert_rewrite("tests.contract")

# deadline off: the machines running the suite are shared and slow, timings mean nothing here
settings.register_profile("ci", max_examples=50, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "hostile",
    max_examples=int(os.environ.get("VMSHARE_HOSTILE_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("VMSHARE_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(autouse=True)
def _secrets_seen_stay_in_their_test() -> Iterator[None]:
    """Each test starts with the redaction set as the session left it: a value one test (or a
    generated example) made a Secret must not redact the text of the tests after it."""
    from vmshare import secret_value

    saved = set(secret_value._KNOWN)
    yield
    secret_value._KNOWN.clear()
    secret_value._KNOWN.update(saved)
