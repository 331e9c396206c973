"""tests/ci_rule.py's CI rule, run in real inner pytest sessions: with CI=true any skip fails
the run, except a ``lab`` test's skip for exactly the documented reason (no lab configured)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.ci_rule import LAB_SKIP_REASON, lab_reason

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "ci_rule.py"
INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
markers =
    lab: needs a real vSphere lab
"""
HEADER = f"""
import pytest
REASON = {LAB_SKIP_REASON!r}
VBOX_REASON = {lab_reason("VMSHARE_VBOX")!r}
def test_runs():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini(INI)

    def run(body: str) -> pytest.RunResult:
        pytester.makepyfile(test_inner=HEADER + body)
        return pytester.runpytest_subprocess()

    return run


def test_a_lab_test_without_a_lab_may_skip(inner) -> None:
    result = inner(
        """
@pytest.mark.lab
def test_lab():
    pytest.skip(REASON)

@pytest.mark.lab
@pytest.mark.skipif(True, reason=REASON)
def test_lab_skipif():
    pass

@pytest.mark.lab
def test_another_lab():
    pytest.skip(VBOX_REASON)
"""
    )
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0


@pytest.mark.parametrize(
    "body",
    [
        # an ordinary skip
        "def test_other():\n    pytest.skip('no server here')\n",
        # the lab's reason without the lab marker
        "def test_unmarked():\n    pytest.skip(REASON)\n",
        # a lab test skipping for another reason
        "@pytest.mark.lab\ndef test_lab():\n"
        "    pytest.skip('VMSHARE_FOO is unset: no Foo to test against')\n",
        "@pytest.mark.lab\ndef test_lab():\n    pytest.skip('lab unreachable')\n",
        # a lab test's allowed skip does not cover another test's skip
        "@pytest.mark.lab\ndef test_lab():\n    pytest.skip(REASON)\n"
        "@pytest.mark.skip(reason='later')\ndef test_later():\n    pass\n",
    ],
)
def test_any_other_skip_fails_ci(inner, body: str) -> None:
    result = inner(body)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["CI: 1 test(s) skipped; in CI every test must run*"])


def test_outside_ci_skips_are_fine(inner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI")
    assert inner("def test_other():\n    pytest.skip('no server')\n").ret == 0
