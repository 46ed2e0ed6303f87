"""A coaching cycle and its scores: typed records kept in the store (DESIGN §6)."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

import msgspec

CycleStatus = Literal["proposed", "active", "closed"]
SessionKind = Literal["planning", "observation", "review"]
ActionStatus = Literal["planned", "tried", "worked", "adapt", "dropped"]
ACTION_STATUSES: tuple[ActionStatus, ...] = ("planned", "tried", "worked", "adapt", "dropped")

Focus = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Criterion = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class CycleSession(msgspec.Struct, frozen=True):
    room: str
    kind: SessionKind
    created: float
    video: str | None = None  # the lesson it looks at (review), or its recording (observation)


class Cycle(msgspec.Struct, frozen=True):
    """The teacher owns it; its coaches work on it with them; nobody else sees it."""

    id: str
    teacher: str  # person id
    coaches: tuple[str, ...]
    focus: Focus
    framework: str
    created: float
    proposed_by: str
    status: CycleStatus = "proposed"
    success_criteria: tuple[Criterion, ...] = ()
    sessions: tuple[CycleSession, ...] = ()
    lessons: tuple[str, ...] = ()  # video ids, in the order they joined the cycle
    shared_with: tuple[str, ...] = ()  # people the teacher shared the closed cycle's report with

    @property
    def people(self) -> frozenset[str]:
        return frozenset((self.teacher, *self.coaches))


class Score(msgspec.Struct, frozen=True):
    """One scorer's level for one criterion of one lesson, with the notes that show it."""

    cycle: str
    video: str
    scorer: str  # person id
    criterion: str
    level: int
    evidence: tuple[str, ...] = ()  # note ids of the lesson's room documents
    at: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.cycle}|{self.video}|{self.scorer}|{self.criterion}"


def new_cycle_id() -> str:
    return "c-" + secrets.token_hex(8)
