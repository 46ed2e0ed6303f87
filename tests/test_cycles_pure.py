"""Coaching cycles' rules and progress with no event loop (server/cycles/): who sees and works
on a cycle, which scores fit its rubric, and the progress figures."""

from __future__ import annotations

import msgspec
import pytest

from server.cycles.model import Cycle, Score
from server.cycles.progress import LessonTags, progress
from server.cycles.rules import check_member, check_score, may_accept, may_close, may_see
from server.documents.frameworks import BUILTIN_DIR, FrameworkLibrary
from server.errors import Forbidden, InvalidField, NotFound

QUESTIONING = FrameworkLibrary(BUILTIN_DIR).get("questioning")
CYCLE = Cycle(
    id="c-1",
    teacher="tia",
    coaches=("cora",),
    focus="My questions only reach the same five pupils",
    framework="questioning",
    created=0.0,
    proposed_by="cora",
    status="active",
    lessons=("v1", "v2"),
)


@pytest.mark.parametrize(
    ("person", "status", "shared", "sees"),
    [
        ("tia", "active", (), True),
        ("cora", "active", (), True),
        ("lee", "active", (), False),  # a leader of the school does not browse
        ("lee", "active", ("lee",), False),  # shared only once closed
        ("lee", "closed", ("lee",), True),
    ],
)
def test_who_sees_a_cycle(person: str, status: str, shared: tuple[str, ...], sees: bool) -> None:
    cycle = msgspec.structs.replace(CYCLE, status=status, shared_with=shared)
    assert may_see(person, cycle) is sees


def test_the_teacher_owns_it() -> None:
    proposed = msgspec.structs.replace(CYCLE, status="proposed")
    assert may_accept("tia", proposed) and not may_accept("cora", proposed)
    assert may_close("tia", CYCLE) and not may_close("cora", CYCLE)
    with pytest.raises(NotFound):
        check_member("lee", CYCLE)
    closed = msgspec.structs.replace(CYCLE, status="closed", shared_with=("lee",))
    with pytest.raises(Forbidden):
        check_member("lee", closed)


def score(**changes: object) -> Score:
    base = {
        "cycle": "c-1",
        "video": "v1",
        "scorer": "cora",
        "criterion": "question-reach",
        "level": 3,
        "evidence": ("n1",),
    }
    return Score(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "error", "needle"),
    [
        ({"scorer": "lee"}, Forbidden, "only the cycle's people"),
        ({"video": "v9"}, InvalidField, "not a lesson of this cycle"),
        ({"criterion": "nonsense"}, InvalidField, "question-reach, question-depth"),
        ({"level": 5}, InvalidField, "[1, 2, 3, 4]"),
        ({"level": 0}, InvalidField, "not one of"),
        ({"evidence": ("n-of-another-lesson",)}, InvalidField, "not a note of this lesson"),
    ],
)
def test_scores_that_do_not_fit_are_refused(
    changes: dict[str, object], error: type[Exception], needle: str
) -> None:
    check_score(score(), CYCLE, QUESTIONING, ["n1", "n2"])  # the good one fits
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]")):
        check_score(score(**changes), CYCLE, QUESTIONING, ["n1", "n2"])


def test_progress_compares_lessons_of_different_lengths() -> None:
    lessons = [
        LessonTags("v1", 1200.0, {"open-question": 4, "closed-question": 8}),
        LessonTags("v2", 600.0, {"open-question": 6, "closed-question": 3}),
        LessonTags("v3", None, {"open-question": 1}),
    ]
    scores = [
        score(scorer="tia", level=2),
        score(level=3),
        score(video="v2", level=4),
    ]
    figures = progress(QUESTIONING, lessons, scores, ["planned", "worked", "worked"])
    rows = figures["lessons"]
    assert isinstance(rows, list)
    first, second, third = rows
    assert first["tags"]["open-question"] == {"count": 4, "per_10_min": 2.0}
    assert second["tags"]["open-question"] == {"count": 6, "per_10_min": 6.0}
    assert third["tags"]["open-question"] == {"count": 1, "per_10_min": None}
    assert first["tags"]["wait-time"] == {"count": 0, "per_10_min": 0.0}
    assert first["ratios"] == {"open-to-closed": 0.5} and second["ratios"] == {
        "open-to-closed": 2.0
    }
    assert third["ratios"] == {"open-to-closed": None}
    # Side by side, never merged.
    assert first["rubric"] == {"tia": {"question-reach": 2}, "cora": {"question-reach": 3}}
    assert figures["actions"] == {"planned": 1, "tried": 0, "worked": 2, "adapt": 0, "dropped": 0}
