"""The talk record's rules (server/rooms/talk.py), table-driven, no event loop."""

from __future__ import annotations

import pytest

from server.rooms.talk import Segment, Speaker, breakers, coach_wait, report, turns

COACH, TEACHER = "c", "t"
SPEAKERS = {COACH: Speaker(COACH, "Cora", "coach"), TEACHER: Speaker(TEACHER, "Tia", "teacher")}


def seg(sub: str, start: float, end: float, at: float | None = None) -> Segment:
    return Segment(sub, 1000.0 + start, 1000.0 + end, at)


# A sitting: the coach opens, the teacher answers after 1 s, the coach waits 2 s, a long
# silence, the teacher starts again, the coach interrupts (overlap), both stop.
SITTING = [
    seg(COACH, 0, 10, 12.0),
    seg(COACH, 11, 15, 23.0),  # same turn: nobody else spoke between
    seg(TEACHER, 16, 30),
    seg(COACH, 32, 40),
    seg(TEACHER, 50, 70),  # after 10 s of silence
    seg(COACH, 69, 75),  # overlaps the teacher's end: a switch, and no wait
]


def test_turns_join_one_speakers_stretches() -> None:
    assert [(t.sub, t.start - 1000, t.end - 1000) for t in turns(SITTING)] == [
        (COACH, 0, 15),
        (TEACHER, 16, 30),
        (COACH, 32, 40),
        (TEACHER, 50, 70),
        (COACH, 69, 75),
    ]


@pytest.mark.parametrize(
    ("segments", "first"),
    [
        ([], []),
        (SITTING, [COACH, TEACHER]),  # the opening word, and after 40-50
        ([seg(COACH, 0, 1), seg(TEACHER, 3.9, 5)], [COACH]),  # 2.9 s: not a silence
        ([seg(COACH, 0, 1), seg(TEACHER, 4.0, 5)], [COACH, TEACHER]),  # 3 s exactly is one
        ([seg(COACH, 0, 10), seg(TEACHER, 2, 3), seg(TEACHER, 12, 13)], [COACH]),
    ],
)
def test_who_breaks_the_silences(segments: list[Segment], first: list[str]) -> None:
    assert breakers(segments) == first


def test_the_coachs_wait_counts_only_teacher_to_coach_hand_overs() -> None:
    assert coach_wait(turns(SITTING), SPEAKERS) == 1.0  # (2 + 0 for the overlap) / 2
    assert coach_wait(turns([seg(COACH, 0, 5), seg(COACH, 9, 10)]), SPEAKERS) is None


def test_the_report() -> None:
    body = report(SITTING, SPEAKERS)
    members = {m["sub"]: m for m in body["members"]}  # type: ignore[attr-defined]
    assert members[COACH] == {
        "sub": COACH,
        "name": "Cora",
        "role": "coach",
        "talk_s": 28.0,
        "turns": 3,
        "longest_s": 15.0,
        "first_after_silence": 1,
    }
    assert members[TEACHER]["talk_s"] == 34.0 and members[TEACHER]["turns"] == 2
    assert body["total_s"] == 62.0
    assert body["switches_per_min"] == round(4 / (75 / 60), 2)
    assert body["segments"][0] == {"sub": COACH, "start": 1000.0, "end": 1010.0, "lesson_at": 12.0}


def test_an_empty_sitting_and_an_unknown_speaker() -> None:
    assert report([], {}) == {
        "members": [],
        "total_s": 0.0,
        "switches_per_min": 0.0,
        "coach_wait_s": None,
        "segments": [],
    }
    body = report([seg("gone", 0, 2)], {})
    assert body["members"] == [
        {
            "sub": "gone",
            "name": "gone",
            "role": "observer",
            "talk_s": 2.0,
            "turns": 1,
            "longest_s": 2.0,
            "first_after_silence": 1,
        }
    ]
