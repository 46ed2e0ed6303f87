"""The one codec: bytes from outside become typed messages here, and only here.

Client frames are decoded in two steps (any MessagePack, then the typed message) so each kind of
wrongness gets its own error code and a message naming what was wrong. Frames between workers
are array-like tagged Structs: compact, and decoded without a second pass.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from server.errors import FrameTooLarge, InvalidField, MalformedFrame, UnknownType
from server.messages import (
    CLIENT_TYPES,
    ClientMessage,
    Lock,
    PlaybackIntent,
    Presence,
    Ref,
    Scalar,
    ServerMessage,
    ViewerReport,
)
from server.rooms.member import Member

PRESENCE_STATE_MAX_BYTES = 1024
T = TypeVar("T")

_any = msgspec.msgpack.Decoder()
_encoder = msgspec.msgpack.Encoder()


def encode(message: ServerMessage | msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode_client(frame: bytes, *, max_bytes: int) -> ClientMessage:
    if len(frame) > max_bytes:
        raise FrameTooLarge(f"frame of {len(frame)} bytes is over the limit of {max_bytes}")
    try:
        obj = _any.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # A str with bytes that are not UTF-8 raises the latter (found by tests/test_fuzz.py).
        raise MalformedFrame(f"frame is not valid MessagePack: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedFrame(f"frame must be a MessagePack map, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise MalformedFrame("frame has no `type` key with a string value")
    cls = CLIENT_TYPES.get(kind)
    if cls is None:
        raise UnknownType(f"unknown message type {kind[:40]!r}", ref=kind[:40])
    ref = obj.get("ref")
    ref = ref if isinstance(ref, str | int) and not isinstance(ref, bool) else kind
    try:
        message = msgspec.convert(obj, cls)
    except msgspec.ValidationError as exc:
        raise InvalidField(f"{kind}: {exc}", ref=ref) from None
    if isinstance(message, Presence) and message.state is not None:
        size = len(_encoder.encode(message.state))
        if size > PRESENCE_STATE_MAX_BYTES:
            raise InvalidField(
                f"presence.state is {size} bytes, over the limit of {PRESENCE_STATE_MAX_BYTES}",
                ref=ref,
            )
    return message


# ---- between workers: to the room's home ------------------------------------------------------


class Forward(msgspec.Struct, frozen=True, array_like=True, tag_field="k"):
    """A participant's intent, forwarded from the worker holding its connection to the home."""


class ForwardJoin(Forward, tag="j", frozen=True):
    member: Member


class ForwardLeave(Forward, tag="l", frozen=True):
    member_id: str
    reason: str


class ForwardPresence(Forward, tag="p", frozen=True):
    member_id: str
    status: str | None
    state: dict[str, Scalar] | None
    ref: Ref


class ForwardPlayback(Forward, tag="c", frozen=True):
    member_id: str
    intent: PlaybackIntent


class ForwardViewer(Forward, tag="v", frozen=True):
    """A member's `buffering`, `ready` or `wait`."""

    member_id: str
    report: ViewerReport


class ForwardLock(Forward, tag="o", frozen=True):
    member_id: str
    lock: Lock


class ForwardAnnounce(Forward, tag="a", frozen=True):
    worker: str
    members: list[Member]


class ForwardResync(Forward, tag="r", frozen=True):
    """This worker missed frames from the home: send its members the room's state again."""

    worker: str


ForwardMessage = (
    ForwardJoin
    | ForwardLeave
    | ForwardPresence
    | ForwardPlayback
    | ForwardViewer
    | ForwardLock
    | ForwardAnnounce
    | ForwardResync
)


class ToHome(msgspec.Struct, frozen=True, array_like=True):
    """A forwarded intent, numbered per sending worker so the home notices a lost one.
    `message` None is a tick: "my last number is `seq`", sent while a room is active."""

    worker: str
    seq: int
    message: ForwardMessage | None


# ---- between workers: from the room's home ----------------------------------------------------


class Outbound(msgspec.Struct, frozen=True, array_like=True, tag_field="k"):
    """What the home publishes to every worker with members in the room."""


class Deliver(Outbound, tag="d", frozen=True):
    origin: str
    to: str | None  # one member, or None for everyone
    exclude: str | None
    frame: bytes  # encoded once by the home, sent as is by every worker
    welcome: bool = False


class HomeChanged(Outbound, tag="h", frozen=True):
    worker: str


class WorkerLost(Outbound, tag="w", frozen=True):
    """The home declared `worker` gone; if it is in fact alive it announces its members again."""

    worker: str


class HomeLeaving(Outbound, tag="x", frozen=True):
    """The home gave the room up (stopping, or lease lost): hold intents until the next home."""

    worker: str


class Resend(Outbound, tag="r", frozen=True):
    """The home missed intents from `worker`: it announces its members again."""

    worker: str


OutboundMessage = Deliver | HomeChanged | WorkerLost | HomeLeaving | Resend


class FromHome(msgspec.Struct, frozen=True, array_like=True):
    """What a home publishes, numbered so a worker notices a lost one. `message` None is a
    tick: "my last number is `seq`", sent while the room is active."""

    home: str
    seq: int
    message: OutboundMessage | None


# ---- between workers: liveness ---------------------------------------------------------------


class Heartbeat(msgspec.Struct, frozen=True, array_like=True):
    worker: str
    alive: bool  # False: stopping now, take over its rooms without waiting for a timeout


# ---- between workers: WHEP signaling to a room's home (server/media/signaling.py) -----------


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


class PublishRequest(MediaEnvelope, tag="p", frozen=True):
    """A WHIP offer: the live lesson, or (`talkback`) a coach's microphone for the earpiece."""

    name: str
    offer: str
    talkback: bool = False
    earpiece: bool = False  # the publisher may hear talk-back on its own connection
    role: str | None = None  # for the audit log at the home, as in WatchRequest
    org: str | None = None
    remote: str | None = None


class TrickleRequest(MediaEnvelope, tag="t", frozen=True):
    session: str
    fragment: str


class LeaveRequest(MediaEnvelope, tag="l", frozen=True):
    session: str


MediaRequest = WatchRequest | PublishRequest | TrickleRequest | LeaveRequest


class MediaReply(msgspec.Struct, frozen=True, array_like=True):
    id: str
    session: str | None = None
    answer: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    status: int = 200


_forward = msgspec.msgpack.Decoder(ToHome)
_outbound = msgspec.msgpack.Decoder(FromHome)
_heartbeat = msgspec.msgpack.Decoder(Heartbeat)
_media_request = msgspec.msgpack.Decoder(MediaRequest)
_media_reply = msgspec.msgpack.Decoder(MediaReply)


def decode_forward(data: bytes) -> ToHome:
    message: ToHome = _forward.decode(data)
    return message


def decode_outbound(data: bytes) -> FromHome:
    message: FromHome = _outbound.decode(data)
    return message


def decode_heartbeat(data: bytes) -> Heartbeat:
    return _heartbeat.decode(data)


def decode_media_request(data: bytes) -> MediaRequest:
    request: MediaRequest = _media_request.decode(data)
    return request


def decode_media_reply(data: bytes) -> MediaReply:
    reply: MediaReply = _media_reply.decode(data)
    return reply


def decode_as(data: bytes, cls: type[T]) -> T:
    """Decode trusted internal data (our own snapshots) into `cls`."""
    return msgspec.msgpack.decode(data, type=cls)
