"""Every Redis key and channel of one room carries the room as a hash tag, so a Redis Cluster
shards by room and all of a room's keys live on one node (Lua scripts may touch several)."""

from __future__ import annotations

WORKERS_CHANNEL = "cocoach:workers"
ROOMS_INDEX = "cocoach:rooms"
VIDEOS_INDEX = "cocoach:videos"


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


def video_key(video_id: str) -> str:
    """A video's record. Videos belong to no room: each is its own hash tag."""
    return f"cocoach:video:{{{video_id}}}"
