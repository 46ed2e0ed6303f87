"""A room's talk record (docs/conversation.md): the stretches of talk its conversation
measured, who spoke when and never what, kept in the store so that any worker can report them
(`GET /api/rooms/{room}/talk`, the exports) and a new home adds to the same record."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec

from server.errors import ServiceUnavailable, StaleHome
from server.messages import LiveInfo, PlaybackInfo
from server.orgs import Orgs
from server.rooms.talk import Segment, Speaker, report
from server.settings import Settings
from server.sync.store import Store

log = logging.getLogger(__name__)


class TalkEntry(msgspec.Struct, array_like=True, frozen=True):
    """One stretch of talk as stored; name and role as they were then."""

    sub: str
    name: str
    role: str
    start: float
    end: float
    lesson_at: float | None = None


_decoder = msgspec.msgpack.Decoder(TalkEntry)
_encoder = msgspec.msgpack.Encoder()


def measured(settings: Settings, orgs: Orgs, room_org: str | None) -> bool:
    """Whether the rooms of this organisation measure who talks when."""
    off = {o.strip() for o in settings.talk_unmeasured.split(",") if o.strip()}
    return "*" not in off and orgs.owning(room_org) not in off


def lesson_at(
    at: float, playback: PlaybackInfo, live: LiveInfo | None, duration: float | None
) -> float | None:
    """The lesson moment on screen at server time `at`: recording time during a live lesson
    (where its notes land too), the room's video position otherwise, None with neither."""
    if live is not None:
        started = live.recording_started_at
        return round(max(0.0, at - started), 2) if started is not None else None
    if playback.video is None:
        return None
    position = playback.position
    if playback.status == "playing":
        position += max(0.0, at - playback.at) * playback.rate
    if duration is not None:
        position = min(position, duration)
    return round(max(0.0, position), 2)


async def append(write: Callable[[bytes], Awaitable[bool]], room: str, entry: TalkEntry) -> None:
    """Keep one stretch of talk through `write` (the room's home's fenced append)."""
    try:
        if not await write(_encoder.encode(entry)):
            log.warning("room %s: talk record full; a stretch of talk was not kept", room)
    except (ServiceUnavailable, StaleHome) as exc:
        log.warning("room %s: a stretch of talk was not kept: %s", room, exc)


async def entries(store: Store, room: str) -> list[TalkEntry]:
    """The room's stretches of talk, as stored."""
    found: list[TalkEntry] = []
    for data in await store.load_talk(room):
        try:
            found.append(_decoder.decode(data))
        except msgspec.DecodeError:
            log.error("room %s: an undecodable stretch of talk skipped", room)
    return found


async def load(store: Store, room: str) -> dict[str, object]:
    """The room's talk report, the shape of `GET /api/rooms/{room}/talk`."""
    return report_of(await entries(store, room))


def report_of(entries: list[TalkEntry]) -> dict[str, object]:
    speakers = {e.sub: Speaker(e.sub, e.name, e.role) for e in entries}
    segments = [Segment(e.sub, e.start, e.end, e.lesson_at) for e in entries]
    return report(segments, speakers)
