"""Store: the durable state of rooms and of the video library. Embedded: SQLite under ./data;
distributed: Redis."""

from __future__ import annotations

import re
from typing import Literal, Protocol

import msgspec

# The ids the library makes (`v` and hex); anything else never names a directory of ours.
VIDEO_ID = re.compile(r"^[a-z0-9]{1,64}$")

# The most stretches of talk one room's talk record holds: a sitting of hours has a few
# thousand; the bound keeps a runaway client from filling the store. Each store reads it once,
# into its `talk_limit`.
MAX_TALK_SEGMENTS = 20_000


class RoomRecord(msgspec.Struct, frozen=True):
    id: str
    title: str
    created: float
    org: str | None = None  # the owning organisation (docs/organisations.md)
    video: str | None = None
    framework: str | None = None
    shared: tuple[str, ...] = ()  # other organisations of the same trust it admits
    # Its people (docs/people.md): person id -> their role in it ("coach", "teacher", ...).
    people: dict[str, str] = msgspec.field(default_factory=dict)
    cycle: str | None = None  # the coaching cycle it is a session of (docs/cycles.md)
    # A room of a clip (docs/groups.md): a viewing, a group's discussion or a group session.
    clip: str | None = None
    # A group's room: its people are the group's at each moment, facilitators as coaches and
    # members as `members_as` ("teacher" in a discussion, "observer" in a group session).
    group: str | None = None
    members_as: str | None = None


VideoStatus = Literal["uploading", "recording", "queued", "ingesting", "ready", "failed"]
# Whether the consent of the people in it covers showing it (docs/videos.md#consent-and-retention).
Consent = Literal["obtained", "not_obtained", "not_needed"]


class Rendition(msgspec.Struct, frozen=True):
    """One transcoded file of a video: VP8 + Opus WebM, a keyframe every second."""

    name: str  # "360p" | "720p"
    width: int
    height: int
    file: str  # relative to the library directory, e.g. "v1a2b3c/360p.webm"
    bytes: int
    fps: int = 30
    duration: float = 0.0


class SourceInfo(msgspec.Struct, frozen=True):
    """What the uploaded file was, as the probe found it."""

    container: str
    video_codec: str
    audio_codec: str | None = None
    width: int = 0
    height: int = 0
    fps: float = 0.0
    rotation: int = 0  # degrees the picture is turned for display (phones record sideways)


class VideoRecord(msgspec.Struct, frozen=True):
    """A lesson video in the library (docs/videos.md). Updates replace the whole record."""

    id: str
    title: str
    created: float
    owner: str  # the uploader's token `sub`, or "admin"
    org: str | None = None  # the uploader's organisation; None: made before organisations
    status: VideoStatus = "uploading"
    progress: float = 0.0  # of the ingest, 0..1
    upload_length: int = 0
    upload_offset: int = 0
    filename: str | None = None
    duration: float | None = None  # seconds; None until probed
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    renditions: tuple[Rendition, ...] = ()
    error: str | None = None
    source: SourceInfo | None = None
    updated: float = 0.0
    attempts: int = 0  # ingests started; a video whose ingest keeps dying is given up
    generate: float | None = None  # seconds of generated lesson clip to ingest (the demo)
    room: str | None = None  # the room a live lesson was recorded in
    # Not served to anyone until consent is recorded; a record from before consent was
    # recorded decodes as not obtained, which is the safe reading.
    consent: Consent = "not_obtained"
    retention_days: int | None = None  # None: the deployment's `video_retention_days`
    # A clip's media (docs/groups.md): cut once from this video, from clip_start to clip_end
    # seconds of it.
    clip_of: str | None = None
    clip_start: float = 0.0
    clip_end: float = 0.0


class Store(Protocol):
    async def create_room(self, record: RoomRecord) -> None:
        """Raises Conflict when a room with that id exists."""

    async def get_room(self, room_id: str) -> RoomRecord | None: ...

    async def list_rooms(self) -> list[RoomRecord]: ...

    async def update_room(self, record: RoomRecord) -> bool:
        """Replace the room's record; False (and nothing written) when no such room exists."""

    async def save_room_state(self, room_id: str, data: bytes) -> None:
        """The room's rules' state (members, playback), written by its home."""

    async def load_room_state(self, room_id: str) -> bytes | None: ...

    async def seed_room_state(self, room_id: str, data: bytes) -> bool:
        """Write the room's state only if the store has none (it restarted and forgot it, and
        no home wrote one since); True if written."""

    async def append_talk(self, room_id: str, data: bytes) -> bool:
        """Add one stretch of talk (opaque bytes, a few dozen) to the room's talk record.
        False, and nothing written, once the record holds MAX_TALK_SEGMENTS stretches."""

    async def load_talk(self, room_id: str) -> list[bytes]:
        """The room's talk record, oldest first ([] when there is none)."""

    async def delete_talk(self, room_id: str) -> None:
        """Forget the room's talk record."""

    async def put_record(self, kind: str, key: str, data: bytes) -> None:
        """Keep a record of the layer above rooms (a person, a sign-in, a link; DESIGN §6),
        replacing the one of that kind and key."""

    async def get_record(self, kind: str, key: str) -> bytes | None: ...

    async def delete_record(self, kind: str, key: str) -> bool:
        """Whether there was one."""

    async def take_record(self, kind: str, key: str) -> bytes | None:
        """Get and delete in one step: of two takers of one record, only one gets it (a
        one-time sign-in link used twice at once)."""

    async def list_records(self, kind: str) -> list[bytes]:
        """Every record of the kind, in no particular order."""

    async def put_video(self, record: VideoRecord) -> None:
        """Create or replace the video's record."""

    async def update_video(self, record: VideoRecord) -> bool:
        """Replace the record only if the video still exists; False when it was deleted (so a
        late progress update cannot bring a deleted video back)."""

    async def get_video(self, video_id: str) -> VideoRecord | None: ...

    async def list_videos(self) -> list[VideoRecord]:
        """Every video, oldest first."""

    async def delete_video(self, video_id: str) -> bool:
        """True when the video existed."""

    async def ping(self) -> None:
        """Raises ServiceUnavailable when the store cannot be reached."""

    async def epoch(self) -> str:
        """The store's incarnation: it changes when the store restarts (and may have lost
        data), so workers know to write back what they hold."""

    async def close(self) -> None: ...


_encoder = msgspec.msgpack.Encoder()
_record = msgspec.msgpack.Decoder(RoomRecord)


def encode_record(record: RoomRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes) -> RoomRecord:
    return _record.decode(data)


_video = msgspec.msgpack.Decoder(VideoRecord)


def encode_video(record: VideoRecord) -> bytes:
    return _encoder.encode(record)


def decode_video(data: bytes) -> VideoRecord:
    return _video.decode(data)
