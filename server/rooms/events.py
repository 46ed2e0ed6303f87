"""What can happen to a room. Every event carries `now` so the rules never read a clock."""

from __future__ import annotations

from dataclasses import dataclass

from server.messages import (
    LiveInfo,
    Lock,
    PlaybackIntent,
    Ref,
    Scalar,
    TalkbackInfo,
    ViewerReport,
    VoiceControl,
)
from server.rooms.member import Member


@dataclass(frozen=True, slots=True)
class Join:
    member: Member
    now: float


@dataclass(frozen=True, slots=True)
class Leave:
    member_id: str
    now: float
    reason: str = "left"


@dataclass(frozen=True, slots=True)
class ChangePresence:
    member_id: str
    now: float
    status: str | None = None
    state: dict[str, Scalar] | None = None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class ControlPlayback:
    member_id: str
    intent: PlaybackIntent
    now: float


@dataclass(frozen=True, slots=True)
class ReportViewer:
    """A member's player reports `buffering` or `ready`, or sets whether the room waits for it."""

    member_id: str
    report: ViewerReport
    now: float


@dataclass(frozen=True, slots=True)
class ChangeLock:
    """A member takes or gives up the presenter lock."""

    member_id: str
    lock: Lock
    now: float


@dataclass(frozen=True, slots=True)
class AttachVideo:
    """The room's video is now `video` (None: no video), with its length and frame rate if known.
    Submitted by the home's media side, never by a client."""

    video: str | None
    duration: float | None
    fps: float | None
    now: float


@dataclass(frozen=True, slots=True)
class ChangeLive:
    """The live lesson's state at the home's media side (None: it ended). From the home, never
    from a client."""

    live: LiveInfo | None
    now: float
    reason: str | None = None
    recording: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeTalkback:
    """Who is on air in the teacher's earpiece (None: nobody). From the home's media side."""

    talkback: TalkbackInfo | None
    now: float


@dataclass(frozen=True, slots=True)
class ControlVoice:
    """A member mutes or unmutes, or (a coach) lets an observer speak or not."""

    member_id: str
    control: VoiceControl
    now: float


@dataclass(frozen=True, slots=True)
class ChangeVoice:
    """`user`'s voice session at the home: up or not, with a camera or not, speaking or not.
    From the home's media side, never from a client."""

    user: str
    connected: bool
    camera: bool
    speaking: bool
    now: float


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed with nothing else happening: the home sends these while the room waits, so a
    wait can time out."""

    now: float


@dataclass(frozen=True, slots=True)
class AnnounceMembers:
    """A worker's full list of its members in this room, sent when the room gets a new home."""

    worker: str
    members: tuple[Member, ...]
    now: float


@dataclass(frozen=True, slots=True)
class LoseWorker:
    """A worker stopped answering: its members are gone."""

    worker: str
    now: float


@dataclass(frozen=True, slots=True)
class Resync:
    """A worker missed frames: its members get the room's state again."""

    worker: str
    now: float


Event = (
    Join
    | Leave
    | ChangePresence
    | ControlPlayback
    | ReportViewer
    | ChangeLock
    | AttachVideo
    | ChangeLive
    | ChangeTalkback
    | ControlVoice
    | ChangeVoice
    | Tick
    | AnnounceMembers
    | LoseWorker
    | Resync
)
