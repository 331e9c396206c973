"""The hostile-input properties' tally: inputs generated per renderer and failing properties,
written as JSON to $VMSHARE_HOSTILE_REPORT when set (scripts/hostile prints it)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.property import hostile

FAILED: Counter[str] = Counter()
PROPERTIES: Counter[str] = Counter()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    hostile.CURRENT[0] = item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        for renderer in hostile.SEEN.get(item.nodeid, ()):
            PROPERTIES[renderer] += 1
            if report.failed:
                FAILED[renderer] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("VMSHARE_HOSTILE_REPORT")
    if not target:
        return
    report = {
        name: {
            "inputs": hostile.TALLY[name],
            "properties": PROPERTIES[name],
            "failed": FAILED[name],
        }
        for name in sorted(hostile.TALLY)
    }
    Path(target).write_text(json.dumps(report, indent=1) + "\n")
