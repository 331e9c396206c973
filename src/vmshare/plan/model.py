"""A Plan (ordered Steps, the choices behind them, what blocks it) and a protocol Choice."""

from __future__ import annotations

from pydantic import BaseModel

from vmshare.plan.step import Step
from vmshare.state import ShareRecord


class Choice(BaseModel):
    share: str
    protocol: str
    reason: str
    semantics: str
    warnings: list[str] = []


class Plan(BaseModel):
    steps: list[Step] = []
    choices: list[Choice] = []
    blockers: list[str] = []  # why apply cannot run as asked (each with what to do)
    notes: list[str] = []
    records: dict[str, ShareRecord] = {}  # what the journal records for each new share
    removes: list[str] = []  # share keys whose journal this plan unwinds

    @property
    def empty(self) -> bool:
        return not self.steps
