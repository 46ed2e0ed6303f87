"""The conversation's wire between server/media/mixer.py (the parent) and its child,
server/media/mixing.py: each message is a 4-byte big-endian length, then a MessagePack array
whose first item is the message's tag (msgspec tagged, array-like structs), at most MAX_MESSAGE
bytes. Parent to child: Join, Leave, Listen, Unlisten, Frame. Child to parent: Mixed, Speaking,
Speech, Stats."""

from __future__ import annotations

import asyncio
import struct

import msgspec

MAX_MESSAGE = 64 * 1024
MAX_OPUS = 4000  # bytes: an RTP packet's Opus payload is far smaller (RFC 7587)
LENGTH = struct.Struct(">I")


class Join(msgspec.Struct, tag="join", array_like=True, frozen=True):
    room: str
    talker: str


class Leave(msgspec.Struct, tag="leave", array_like=True, frozen=True):
    room: str
    talker: str


class Listen(msgspec.Struct, tag="listen", array_like=True, frozen=True):
    """`listener` hears every talker of the room but `exclude` (None: every talker)."""

    room: str
    listener: str
    exclude: str | None


class Unlisten(msgspec.Struct, tag="unlisten", array_like=True, frozen=True):
    room: str
    listener: str


class Frame(msgspec.Struct, tag="frame", array_like=True, frozen=True):
    """One Opus packet of a talker's microphone, as received; `arrived`: parent wall clock."""

    room: str
    talker: str
    opus: bytes
    arrived: float


class Mixed(msgspec.Struct, tag="mixed", array_like=True, frozen=True):
    """One 20 ms Opus frame of a mix, for every listener in `listeners` (they hear the same
    talkers). `timestamp`: RTP, 48 kHz, on a grid that goes on across children. `arrived`:
    when the audio that ends it arrived (parent wall clock; of its talkers, the one that came
    first), 0.0 for silence: the frame could not have left before, so `now - arrived` is the
    delay the mixing adds."""

    room: str
    listeners: list[str]
    opus: bytes
    timestamp: int
    arrived: float


class Speaking(msgspec.Struct, tag="speaking", array_like=True, frozen=True):
    room: str
    talker: str
    on: bool
    at: float


class Speech(msgspec.Struct, tag="speech", array_like=True, frozen=True):
    """A finished stretch of a talker's talk, parent wall-clock seconds."""

    room: str
    talker: str
    start: float
    end: float


class Stats(msgspec.Struct, tag="stats", array_like=True, frozen=True):
    """The child's counts since it started: said every second (also its heartbeat)."""

    frames: int = 0  # talker frames received
    undecodable: int = 0  # not Opus: skipped
    strangers: int = 0  # frames of no talker of the room: skipped, never mixed
    concealed: int = 0  # 20 ms a talker's audio was missing (silence in its place)
    trimmed: int = 0  # times a talker's audio was cut to keep its delay low
    late_ticks: int = 0  # 20 ms ticks the child missed (it was too busy)
    encoded: int = 0  # mixes encoded
    silent: int = 0  # mixes that were silence (a constant packet, nothing encoded)


ToChild = Join | Leave | Listen | Unlisten | Frame
FromChild = Mixed | Speaking | Speech | Stats


def frame(message: ToChild | FromChild, encoder: msgspec.msgpack.Encoder) -> bytes:
    body = encoder.encode(message)
    return LENGTH.pack(len(body)) + body


class TooLong(ValueError):
    """A peer announced a message longer than MAX_MESSAGE: the stream is out of step."""


async def read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One message's body; None at the end of the stream."""
    try:
        head = await reader.readexactly(LENGTH.size)
    except asyncio.IncompleteReadError:
        return None
    (size,) = LENGTH.unpack(head)
    if size > MAX_MESSAGE:
        raise TooLong(f"a message of {size} bytes")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
