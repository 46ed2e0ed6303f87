"""Between workers: intents forwarded to a room's home, what the home publishes, heartbeats.

Array-like tagged Structs: compact, and decoded without a second pass. Only workers send these
(over the broker), so a frame that does not decode is logged and dropped, never answered.
"""

from __future__ import annotations

import msgspec

from server.messages import Lock, PlaybackIntent, Ref, Scalar, ViewerReport, VoiceControl
from server.rooms.member import Member

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


class ForwardVoice(Forward, tag="s", frozen=True):
    """A member's `mute` or `allow_speak`."""

    member_id: str
    control: VoiceControl


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
    | ForwardVoice
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


_forward = msgspec.msgpack.Decoder(ToHome)
_outbound = msgspec.msgpack.Decoder(FromHome)
_heartbeat = msgspec.msgpack.Decoder(Heartbeat)


def decode_forward(data: bytes) -> ToHome:
    message: ToHome = _forward.decode(data)
    return message


def decode_outbound(data: bytes) -> FromHome:
    message: FromHome = _outbound.decode(data)
    return message


def decode_heartbeat(data: bytes) -> Heartbeat:
    return _heartbeat.decode(data)
