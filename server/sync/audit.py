"""The audit log (docs/audit.md): who joined which room, who watched which video and when,
exports, deletions. Append-only: nothing here updates or deletes an event.

An event never holds a token or any text of the plan or the notes; callers build it from
claims and ids, and `detail` is a small map of plain values (a reason, a format, a count).
Embedded: SQLite; distributed: a Redis stream (capped, see `RedisAuditLog`).
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

AuditAction = Literal[
    "room.create",
    "room.join",
    "room.leave",
    "invites.create",
    "video.upload",
    "video.update",
    "video.delete",
    "video.purge",
    "video.watch",
    "video.unwatch",
    "video.download",
    "video.admin_read",
    "video.admin_manage",
    "live.publish",
    "live.end",
    "talkback.start",
    "talkback.stop",
    "voice.join",
    "voice.leave",
    "camera.watch",
    "talk.read",
    "cycle.read",
    "cycle.share",
    "clip.create",
    "clip.delete",
    "clip.view",
    "clip.share",
    "clip.unshare",
    "clip.publish",
    "clip.unpublish",
    "group.create",
    "group.members",
    "person.add",
    "person.roles",
    "person.login_link",
    "person.sign_in",
    "person.sign_in_failed",
    "person.sign_out",
    "export.read",
    "summary.read",
    "audit.read",
]
ACTIONS: tuple[str, ...] = AuditAction.__args__  # type: ignore[attr-defined]

DetailValue = str | int | float | bool | None


class Actor(msgspec.Struct, frozen=True, omit_defaults=True):
    """Who did it: a token's `sub`, `name`, `role` and `org`, or the admin key (`sub` "admin"),
    or the server itself (`sub` "system", for retention deletions)."""

    sub: str
    name: str | None = None
    role: str | None = None
    org: str | None = None


ADMIN = Actor(sub="admin", role="admin")
SYSTEM = Actor(sub="system", role="system")


class AuditEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    time: float  # Unix seconds, when it happened
    action: AuditAction
    actor: Actor
    room: str | None = None
    video: str | None = None
    remote: str | None = None  # the client's address, as the worker saw it
    worker: str | None = None  # which worker recorded it
    detail: dict[str, DetailValue] = {}
    id: str = ""  # set by the log: opaque, increasing in the order events were appended


class AuditQuery(msgspec.Struct, frozen=True):
    """Every field narrows the answer; `after` is the `id` of the last event already seen."""

    room: str | None = None
    video: str | None = None
    actor: str | None = None  # a `sub`
    action: str | None = None
    since: float | None = None  # inclusive
    until: float | None = None  # exclusive
    after: str | None = None
    limit: int = 100


def matches(event: AuditEvent, query: AuditQuery) -> bool:
    """The one definition of a match; both logs filter with it (SQLite after its indexed
    narrowing, Redis after its time-range scan), so they cannot disagree."""
    return (
        (query.room is None or event.room == query.room)
        and (query.video is None or event.video == query.video)
        and (query.actor is None or event.actor.sub == query.actor)
        and (query.action is None or event.action == query.action)
        and (query.since is None or event.time >= query.since)
        and (query.until is None or event.time < query.until)
    )


class AuditLog(Protocol):
    async def append(self, events: list[AuditEvent]) -> None:
        """Append in order; ids are given here. Raises ServiceUnavailable if not stored."""

    async def query(self, query: AuditQuery) -> tuple[list[AuditEvent], bool]:
        """Matching events, oldest first, at most `query.limit`, after `query.after`; and
        whether more match past the last one returned."""

    async def close(self) -> None: ...


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AuditEvent)


def encode_event(event: AuditEvent) -> bytes:
    return _encoder.encode(msgspec.structs.replace(event, id=""))


def decode_event(data: bytes, event_id: str) -> AuditEvent:
    return msgspec.structs.replace(_decoder.decode(data), id=event_id)
