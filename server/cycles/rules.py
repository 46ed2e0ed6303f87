"""Who may do what with a cycle, and whether a score fits its rubric: pure functions of
(person, cycle, framework), as server/orgs.py and server/rooms/ are (DESIGN §6)."""

from __future__ import annotations

from collections.abc import Iterable

from server.cycles.model import Cycle, Score
from server.documents.frameworks import Framework
from server.errors import Forbidden, InvalidField, NotFound

MAX_EVIDENCE = 50


def may_see(person: str, cycle: Cycle) -> bool:
    """Its teacher and coaches; after it closed, whom the teacher shared its report with."""
    return person in cycle.people or (cycle.status == "closed" and person in cycle.shared_with)


def check_member(person: str, cycle: Cycle) -> None:
    """NotFound for anyone who may not see it (as if it did not exist)."""
    if not may_see(person, cycle):
        raise NotFound(f"no cycle {cycle.id!r} of yours")
    if person not in cycle.people:
        raise Forbidden("this cycle's report was shared with you; its work is its people's")


def may_accept(person: str, cycle: Cycle) -> bool:
    """A coach proposes; only the teacher starts it."""
    return cycle.status == "proposed" and person == cycle.teacher


def may_close(person: str, cycle: Cycle) -> bool:
    return cycle.status == "active" and person == cycle.teacher


def may_work(person: str, cycle: Cycle) -> bool:
    """Add sessions, lessons, scores: its people, while it is active."""
    return cycle.status == "active" and person in cycle.people


def check_score(score: Score, cycle: Cycle, framework: Framework, notes: Iterable[str]) -> None:
    """A score fits: by one of the cycle's people, for one of its lessons, a criterion of its
    framework's rubric, a level the criterion has, evidence from that lesson's notes."""
    if not may_work(score.scorer, cycle):
        raise Forbidden("only the cycle's people score its lessons, while it is active")
    if score.video not in cycle.lessons:
        raise InvalidField(f"video {score.video[:64]!r} is not a lesson of this cycle")
    if framework.rubric is None:
        raise InvalidField(f"framework {framework.id!r} has no rubric to score against")
    criterion = next((c for c in framework.rubric.criteria if c.id == score.criterion), None)
    if criterion is None:
        known = ", ".join(c.id for c in framework.rubric.criteria)
        raise InvalidField(f"criterion {score.criterion[:64]!r} is not one of {known}")
    levels = [level.level for level in criterion.levels]
    if score.level not in levels:
        raise InvalidField(
            f"level {score.level} is not one of criterion {criterion.id!r}'s: {levels}"
        )
    if len(score.evidence) > MAX_EVIDENCE:
        raise InvalidField(f"evidence: at most {MAX_EVIDENCE} notes")
    known_notes = set(notes)
    for note in score.evidence:
        if note not in known_notes:
            raise InvalidField(f"evidence: note {note[:64]!r} is not a note of this lesson")
