"""Room-protocol messages: every frame is one MessagePack map with a `type` key.

These are the typed shapes; `server/codec.py` is the only place that turns bytes into them and
back. Unknown extra fields in a client frame are ignored so newer clients can talk to older
servers; a known field with a wrong type is an error that names the field.
"""

from __future__ import annotations

from typing import Literal

import msgspec

PROTOCOL_VERSION = 1

Scalar = str | int | float | bool | None
Ref = str | int | None

PresenceStatus = Literal["here", "away", "idle"]
PlaybackStatus = Literal["paused", "playing", "waiting"]


class Message(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=False):
    """Base of every frame; the subclass's tag is its `type`."""


# ---- client -> server -------------------------------------------------------------------------


class Ping(Message, tag="ping", frozen=True):
    id: int | str
    t0: float


class Presence(Message, tag="presence", frozen=True):
    status: PresenceStatus | None = None
    state: dict[str, Scalar] | None = None
    ref: Ref = None


class Play(Message, tag="play", frozen=True):
    ref: Ref = None


class Pause(Message, tag="pause", frozen=True):
    ref: Ref = None


class Seek(Message, tag="seek", frozen=True):
    position: float
    ref: Ref = None


class Rate(Message, tag="rate", frozen=True):
    rate: float
    ref: Ref = None


class Step(Message, tag="step", frozen=True):
    """Move a paused video by whole frames (negative: back)."""

    frames: int
    ref: Ref = None


class Lock(Message, tag="lock", frozen=True):
    """Become the presenter (`locked` true), the one member who controls playback, or stop."""

    locked: bool
    ref: Ref = None


class Buffering(Message, tag="buffering", frozen=True):
    """This viewer cannot play at the room's position (loading, seeking, stalled)."""

    ref: Ref = None


class Ready(Message, tag="ready", frozen=True):
    """This viewer can play at the room's position."""

    ref: Ref = None


class Wait(Message, tag="wait", frozen=True):
    """Whether the room waits when this viewer stalls (true until said otherwise)."""

    wait_for_me: bool
    ref: Ref = None


class Mute(Message, tag="mute", frozen=True):
    """This member's microphone is muted (or not): the others see `voice.mic` follow it."""

    muted: bool
    ref: Ref = None


class AllowSpeak(Message, tag="allow_speak", frozen=True):
    """Let an observer (the member whose token `sub` is `user`) talk in the conversation, or
    take it back (its voice session then ends). Coach only."""

    user: str
    allowed: bool
    ref: Ref = None


ClientMessage = (
    Ping
    | Presence
    | Play
    | Pause
    | Seek
    | Rate
    | Step
    | Lock
    | Buffering
    | Ready
    | Wait
    | Mute
    | AllowSpeak
)
PlaybackIntent = Play | Pause | Seek | Rate | Step
ViewerReport = Buffering | Ready | Wait
VoiceControl = Mute | AllowSpeak

CLIENT_TYPES: dict[str, type[ClientMessage]] = {
    "ping": Ping,
    "presence": Presence,
    "play": Play,
    "pause": Pause,
    "seek": Seek,
    "rate": Rate,
    "step": Step,
    "lock": Lock,
    "buffering": Buffering,
    "ready": Ready,
    "wait": Wait,
    "mute": Mute,
    "allow_speak": AllowSpeak,
}


# ---- shapes shared by server frames ----------------------------------------------------------


class VoiceInfo(msgspec.Struct, frozen=True):
    """A member's part in the conversation (docs/conversation.md). `mic`: their microphone is
    in the conversation and not muted."""

    mic: bool = False
    camera: bool = False
    speaking: bool = False


class MemberInfo(msgspec.Struct, frozen=True):
    id: str  # one connection: a user with two tabs is two members
    user: str  # the token's `sub`, stable across connections
    name: str
    role: str
    status: str = "here"
    state: dict[str, Scalar] = msgspec.field(default_factory=dict)
    org: str | None = None
    voice: VoiceInfo = msgspec.field(default_factory=VoiceInfo)
    speak: bool = False  # may talk in the conversation now


class PlaybackInfo(msgspec.Struct, frozen=True):
    status: PlaybackStatus = "paused"
    position: float = 0.0  # seconds of video at server time `at`
    rate: float = 1.0
    at: float = 0.0  # server time (Unix seconds) at which `position` holds
    seq: int = 0  # bumps on every accepted change
    by: str | None = None  # member id of whoever made the change; None: the server did
    waiting_for: list[str] = msgspec.field(default_factory=list)
    video: str | None = None  # the video attached to the room
    presenter: str | None = None  # member id of the one member who may control playback


class LiveInfo(msgspec.Struct, frozen=True):
    """A live lesson being published into the room (docs/live.md)."""

    status: Literal["live", "interrupted"]  # interrupted: the publisher dropped; it may return
    publisher: str  # the publisher's user (token `sub`)
    name: str
    since: float  # server time of the last status change
    recording: str | None = None  # the video id of the recording part being written
    part: int = 1
    # Server time of recording time 0: a note made at server time T lands at T - this.
    recording_started_at: float | None = None


class TalkbackInfo(msgspec.Struct, frozen=True):
    """The coach on air in the teacher's earpiece."""

    user: str
    name: str
    since: float


class RoomInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    title: str
    # The coaching cycle the room is a session of: the page shows its action steps.
    cycle: str | None = None


# ---- server -> client -------------------------------------------------------------------------


class Welcome(Message, tag="welcome", frozen=True):
    protocol: int
    room: RoomInfo
    you: MemberInfo
    permissions: list[str]
    members: list[MemberInfo]
    playback: PlaybackInfo
    server_time: float
    live: LiveInfo | None = None
    talkback: TalkbackInfo | None = None
    # The room measures who talks when (never what is said): the page says so before anyone
    # speaks (docs/conversation.md).
    talk_measured: bool = True


class MemberJoined(Message, tag="member_joined", frozen=True):
    member: MemberInfo


class MemberLeft(Message, tag="member_left", frozen=True):
    id: str
    reason: str = "left"


class MemberUpdated(Message, tag="member_updated", frozen=True):
    member: MemberInfo


class Pong(Message, tag="pong", frozen=True):
    id: int | str
    t0: float
    server_time: float


class PlaybackChanged(Message, tag="playback", frozen=True):
    playback: PlaybackInfo


class Error(Message, tag="error", frozen=True):
    code: str
    message: str
    ref: Ref = None


class State(Message, tag="state", frozen=True):
    """The room's whole state again, after this member's worker missed frames: replace what
    you know of members and playback with this."""

    members: list[MemberInfo]
    playback: PlaybackInfo
    server_time: float
    live: LiveInfo | None = None
    talkback: TalkbackInfo | None = None


class LiveChanged(Message, tag="live", frozen=True):
    """The live lesson started, dropped, came back or ended (`live` None). When it ends,
    `recording` names the recording's video and `reason` says why."""

    live: LiveInfo | None
    reason: str | None = None
    recording: str | None = None


class TalkbackChanged(Message, tag="talkback", frozen=True):
    """The on-air indicator: who speaks into the teacher's earpiece, or nobody."""

    talkback: TalkbackInfo | None


class Reconnect(Message, tag="reconnect", frozen=True):
    """Sent before a graceful shutdown: connect again (to any worker) after `after` seconds."""

    reason: str
    after: float = 0.5


def message_ref(message: ClientMessage) -> Ref:
    """What an error about `message` points at: the client's `ref` if it sent one, else its type."""
    ref = getattr(message, "ref", None)
    return ref if ref is not None else message.__struct_config__.tag


ServerMessage = (
    Welcome
    | MemberJoined
    | MemberLeft
    | MemberUpdated
    | Pong
    | PlaybackChanged
    | Error
    | State
    | LiveChanged
    | TalkbackChanged
    | Reconnect
)
