"""Between workers: WHEP and WHIP requests to a room's home, and its replies
(`server/session/signaling.py` sends and serves them)."""

from __future__ import annotations

import msgspec


class MediaEnvelope(msgspec.Struct, frozen=True, array_like=True, tag_field="k"):
    """A viewer's WHEP request, forwarded to the room's home; the answer goes to `reply_to`."""

    id: str
    reply_to: str
    room: str
    user: str


class WatchRequest(MediaEnvelope, tag="w", frozen=True):
    name: str
    offer: str
    rendition: str
    source: str = "auto"  # "auto", "video", "live" or "talkback" (docs/live.md)
    # For the audit log at the home (optional, last: array_like, so an older worker's
    # request still decodes).
    role: str | None = None
    org: str | None = None
    remote: str | None = None
    member: str | None = None  # source "camera": whose camera (their `sub`)


class PublishRequest(MediaEnvelope, tag="p", frozen=True):
    """A WHIP offer: the live lesson, or (`talkback`) a coach's microphone for the earpiece."""

    name: str
    offer: str
    talkback: bool = False
    earpiece: bool = False  # the publisher may hear talk-back on its own connection
    role: str | None = None  # for the audit log at the home, as in WatchRequest
    org: str | None = None
    remote: str | None = None


class VoiceRequest(MediaEnvelope, tag="v", frozen=True):
    """A member joins the room's conversation (`POST /rooms/{room}/voice`); `speak`: their
    token's permission, which the room's coach may override for an observer."""

    name: str
    offer: str
    role: str
    speak: bool
    org: str | None = None
    remote: str | None = None


class TrickleRequest(MediaEnvelope, tag="t", frozen=True):
    session: str
    fragment: str


class LeaveRequest(MediaEnvelope, tag="l", frozen=True):
    session: str


MediaRequest = WatchRequest | PublishRequest | VoiceRequest | TrickleRequest | LeaveRequest


class MediaReply(msgspec.Struct, frozen=True, array_like=True):
    id: str
    session: str | None = None
    answer: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    status: int = 200


_media_request = msgspec.msgpack.Decoder(MediaRequest)
_media_reply = msgspec.msgpack.Decoder(MediaReply)


def decode_media_request(data: bytes) -> MediaRequest:
    request: MediaRequest = _media_request.decode(data)
    return request


def decode_media_reply(data: bytes) -> MediaReply:
    reply: MediaReply = _media_reply.decode(data)
    return reply
