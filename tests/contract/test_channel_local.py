"""vmshare.testing.LocalChannel keeps the guest channel contract (no VM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.channel import GuestChannelContract
from vmshare.testing import LocalChannel


class TestLocalChannel(GuestChannelContract):
    timeout_slack = 5.0

    @pytest.fixture
    def channel(self):
        return LocalChannel()

    @pytest.fixture
    def side_effects(self):
        return lambda path: Path(path).exists()
