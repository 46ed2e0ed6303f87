"""Consent and retention of videos, as pure rules (docs/videos.md#consent-and-retention): what
an upload may say, when a video expires, which videos are due for deletion. The retention job
(`server/library/purge.py`) and `cocoach purge` select with the same function."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import get_args

from server.errors import InvalidField
from server.sync.store import Consent, VideoRecord

CONSENT_VALUES: tuple[Consent, ...] = get_args(Consent)
SERVABLE: frozenset[Consent] = frozenset({"obtained", "not_needed"})
MAX_RETENTION_DAYS = 3650  # ten years: a longer period is a typo, not a policy
DAY = 86400.0


def parse_consent(value: str | None, default: Consent = "not_obtained") -> Consent:
    if value is None:
        return default
    for consent in CONSENT_VALUES:
        if value == consent:
            return consent
    raise InvalidField(f"consent must be one of {', '.join(CONSENT_VALUES)}, not {value[:40]!r}")


def check_retention_days(days: int | None) -> int | None:
    if days is not None and not 1 <= days <= MAX_RETENTION_DAYS:
        raise InvalidField(f"retention_days must be a whole number from 1 to {MAX_RETENTION_DAYS}")
    return days


def parse_retention_days(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit():
        raise InvalidField(
            f"retention_days must be a whole number from 1 to {MAX_RETENTION_DAYS}, "
            f"not {text[:40]!r}"
        )
    return check_retention_days(int(text))


def consent_covers(record: VideoRecord) -> bool:
    """May the video be shown to viewers in rooms?"""
    return record.consent in SERVABLE


def retention_of(record: VideoRecord, default_days: int) -> int | None:
    """The video's retention period in days; None when it is kept until someone deletes it
    (no period of its own and `video_retention_days` 0)."""
    if record.retention_days is not None:
        return record.retention_days
    return default_days if default_days > 0 else None


def expires_at(record: VideoRecord, default_days: int) -> float | None:
    days = retention_of(record, default_days)
    return None if days is None else record.created + days * DAY


@dataclass(frozen=True, slots=True)
class Expired:
    record: VideoRecord
    expired_at: float
    days: int

    orphan: bool = False  # a clip whose video is gone

    @property
    def reason(self) -> str:
        if self.orphan:
            return "the video it was cut from was deleted"
        return f"retention of {self.days} days ended"


def select_expired(records: Iterable[VideoRecord], now: float, default_days: int) -> list[Expired]:
    """The videos whose retention has ended at `now`, longest expired first. A clip's media
    (docs/groups.md) lives exactly as long as the video it was cut from: it goes with it."""
    records = list(records)
    by_id = {r.id: r for r in records}
    due = []
    for record in records:
        if record.clip_of is not None:
            parent = by_id.get(record.clip_of)
            if parent is None:
                due.append(Expired(record, now, 0, orphan=True))
                continue
            days = retention_of(parent, default_days)
            if days is not None and parent.created + days * DAY <= now:
                due.append(Expired(record, parent.created + days * DAY, days))
            continue
        days = retention_of(record, default_days)
        if days is None or record.status == "recording":
            continue  # a live lesson still being written goes once it is a finished video
        ends = record.created + days * DAY
        if ends <= now:
            due.append(Expired(record, ends, days))
    return sorted(due, key=lambda e: (e.expired_at, e.record.id))
