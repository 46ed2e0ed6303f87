"""A cycle's progress (`GET /api/cycles/{id}/progress`): per lesson, each tag's count and rate
per 10 minutes of lesson (so lessons of different lengths compare), the ratios the framework
names, and the rubric levels by scorer (the teacher's and the coach's side by side, never
merged); the actions by status. Pure: the lessons' tag counts come in, figures go out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from server.cycles.model import ACTION_STATUSES, Score
from server.documents.frameworks import Framework

PER = 600.0  # seconds: rates are per 10 minutes of lesson


@dataclass(frozen=True, slots=True)
class LessonTags:
    """One lesson of the cycle: its length and how often each tag was used on its notes."""

    video: str
    duration: float | None  # seconds; None: not known (no rates then)
    counts: Mapping[str, int] = field(default_factory=dict)


def _rate(count: int, duration: float | None) -> float | None:
    if duration is None or duration <= 0:
        return None
    return round(count * PER / duration, 2)


def progress(
    framework: Framework,
    lessons: Iterable[LessonTags],
    scores: Iterable[Score],
    action_statuses: Iterable[str] = (),
) -> dict[str, object]:
    by_lesson: dict[str, dict[str, dict[str, int]]] = {}
    for score in scores:
        by_scorer = by_lesson.setdefault(score.video, {})
        by_scorer.setdefault(score.scorer, {})[score.criterion] = score.level
    rows = []
    for lesson in lessons:
        tags = {
            tag.id: {
                "count": lesson.counts.get(tag.id, 0),
                "per_10_min": _rate(lesson.counts.get(tag.id, 0), lesson.duration),
            }
            for tag in framework.tags
        }
        ratios: dict[str, float | None] = {}
        for ratio in framework.ratios:
            below = lesson.counts.get(ratio.denominator, 0)
            above = lesson.counts.get(ratio.numerator, 0)
            ratios[ratio.id] = round(above / below, 2) if below else None
        rows.append(
            {
                "video": lesson.video,
                "duration_s": lesson.duration,
                "tags": tags,
                "ratios": ratios,
                "rubric": by_lesson.get(lesson.video, {}),
            }
        )
    statuses = Counter(action_statuses)
    return {
        "framework": framework.id,
        "lessons": rows,
        "actions": {status: statuses.get(status, 0) for status in ACTION_STATUSES},
    }
