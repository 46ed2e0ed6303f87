"""How a conversation went, from who spoke when (docs/conversation.md): never what was said.

Pure: stretches of speech in, the room's talk record out (`GET /api/rooms/{room}/talk`). Each
stretch is one speaker's, from that speaker's own microphone (one person, one microphone: no
diarization), with the lesson moment that was on screen when it began.

- a *turn* is a run of one speaker's stretches that nobody else's stretch interrupts;
- the *longest* is a speaker's longest turn, first word to last;
- a *switch* is a turn by someone else than the turn before; per minute of the sitting (first
  word to last word);
- *first after silence*: who broke each silence of SILENCE seconds or more (the first word
  of the sitting counts too);
- the *coach's wait*: the mean gap between a teacher's turn ending and the coach's turn that
  follows it, over every such hand-over.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

SILENCE = 3.0  # seconds of nobody speaking that make the next word "first after silence"


@dataclass(frozen=True, slots=True)
class Segment:
    sub: str
    start: float  # Unix seconds, server clock
    end: float
    lesson_at: float | None = None  # the lesson position at `start`, None with no lesson

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class Speaker:
    sub: str
    name: str
    role: str  # coach | teacher | observer


@dataclass(frozen=True, slots=True)
class Turn:
    sub: str
    start: float
    end: float


def turns(segments: list[Segment]) -> list[Turn]:
    """Consecutive stretches of one speaker, in time order, joined into turns."""
    found: list[Turn] = []
    for segment in sorted(segments, key=lambda s: (s.start, s.end, s.sub)):
        last = found[-1] if found else None
        if last is not None and last.sub == segment.sub:
            found[-1] = Turn(last.sub, last.start, max(last.end, segment.end))
        else:
            found.append(Turn(segment.sub, segment.start, segment.end))
    return found


def breakers(segments: list[Segment], silence: float = SILENCE) -> list[str]:
    """Who spoke first after each silence of `silence` seconds or more, the first word too."""
    found: list[str] = []
    heard_until: float | None = None
    for segment in sorted(segments, key=lambda s: (s.start, s.end, s.sub)):
        if heard_until is None or segment.start - heard_until >= silence:
            found.append(segment.sub)
        heard_until = segment.end if heard_until is None else max(heard_until, segment.end)
    return found


def report(segments: list[Segment], speakers: dict[str, Speaker]) -> dict[str, object]:
    """The room's talk record: per member, and for the conversation as a whole."""
    ordered = sorted(segments, key=lambda s: (s.start, s.end, s.sub))
    spoken = turns(ordered)
    first = breakers(ordered)
    subs = list(dict.fromkeys([*speakers, *(s.sub for s in ordered)]))
    members = []
    for sub in subs:
        speaker = speakers.get(sub, Speaker(sub, sub, "observer"))
        own = [t for t in spoken if t.sub == sub]
        members.append(
            {
                "sub": sub,
                "name": speaker.name,
                "role": speaker.role,
                "talk_s": round(sum(s.seconds for s in ordered if s.sub == sub), 2),
                "turns": len(own),
                "longest_s": round(max((t.end - t.start for t in own), default=0.0), 2),
                "first_after_silence": first.count(sub),
            }
        )
    minutes = (ordered[-1].end - ordered[0].start) / 60 if ordered else 0.0
    switches = sum(1 for a, b in itertools.pairwise(spoken) if a.sub != b.sub)
    return {
        "members": members,
        "total_s": round(sum(s.seconds for s in ordered), 2),
        "switches_per_min": round(switches / minutes, 2) if minutes > 0 else 0.0,
        "coach_wait_s": coach_wait(spoken, speakers),
        "segments": [
            {"sub": s.sub, "start": s.start, "end": s.end, "lesson_at": s.lesson_at}
            for s in ordered
        ],
    }


def coach_wait(spoken: list[Turn], speakers: dict[str, Speaker]) -> float | None:
    """The mean wait after a teacher stops before a coach speaks; None with no hand-over."""

    def role(sub: str) -> str:
        speaker = speakers.get(sub)
        return speaker.role if speaker is not None else "observer"

    waits = [
        max(0.0, b.start - a.end)
        for a, b in itertools.pairwise(spoken)
        if role(a.sub) == "teacher" and role(b.sub) == "coach"
    ]
    return round(sum(waits) / len(waits), 2) if waits else None
