"""Every Redis key and broker channel, in one place (docs/architecture.md lists them).

Every key and channel of one room carries the room as a hash tag, so a Redis Cluster shards by
room and all of a room's keys live on one node (Lua scripts may touch several)."""

from __future__ import annotations

WORKERS_CHANNEL = "cocoach:workers"
ROOMS_INDEX = "cocoach:rooms"
VIDEOS_INDEX = "cocoach:videos"
AUDIT_STREAM = "cocoach:audit"
WITHDRAWN_CHANNEL = "cocoach:videos:withdrawn"  # every worker listens: close viewers of a video
# Every worker listens: close the viewers in one room (a clip's share withdrawn, docs/groups.md).
ROOM_CUT_CHANNEL = "cocoach:rooms:cut"
LIBRARY_CHANNEL = "cocoach:library"  # every worker listens: a clip published or unpublished


def room_key(room: str, part: str) -> str:
    return f"cocoach:{{{room}}}:{part}"


def home_channel(room: str) -> str:
    """Intents to the room's home."""
    return room_key(room, "home")


def out_channel(room: str) -> str:
    """What the room's home publishes to every worker with members in the room."""
    return room_key(room, "out")


def lease_key(room: str) -> str:
    return room_key(room, "lease")


def fence_key(room: str) -> str:
    """The last fencing token of the room's lease: a counter that never goes back."""
    return room_key(room, "fence")


def state_key(room: str) -> str:
    """The room's state as its home last persisted it."""
    return room_key(room, "state")


def talk_key(room: str) -> str:
    """The room's talk record: a list of stretches of talk (who spoke when), oldest first."""
    return room_key(room, "talk")


def video_key(video_id: str) -> str:
    """A video's record. Videos belong to no room: each is its own hash tag."""
    return f"cocoach:video:{{{video_id}}}"


def media_channel(room: str) -> str:
    """WHEP and WHIP requests to the room's home."""
    return room_key(room, "media")


def reply_channel(worker: str, room: str) -> str:
    """Answers to the media requests a worker sent to a room's home: in the room's slot, so the
    home's answer is one fenced Lua call in a cluster too."""
    return room_key(room, f"reply:{worker}")


def awareness_channel(room: str) -> str:
    """Yjs awareness (cursors, who is here) of the room's document, between workers."""
    return room_key(room, "aw")


def doc_channel(room: str) -> str:
    """Announcements of the room's document log entries."""
    return room_key(room, "doc")


def records_key(kind: str) -> str:
    """The records of one kind of the layer above rooms (people, sign-ins, links): a hash of
    key to record. Not a room's, so no room hash tag."""
    return f"cocoach:records:{kind}"
