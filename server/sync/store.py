"""Store: the durable state of rooms. Embedded: SQLite under ./data; distributed: Redis."""

from __future__ import annotations

from typing import Protocol

import msgspec


class RoomRecord(msgspec.Struct, frozen=True):
    id: str
    title: str
    created: float
    org: str | None = None
    video: str | None = None
    framework: str | None = None


class Store(Protocol):
    async def create_room(self, record: RoomRecord) -> None:
        """Raises Conflict when a room with that id exists."""

    async def get_room(self, room_id: str) -> RoomRecord | None: ...

    async def list_rooms(self) -> list[RoomRecord]: ...

    async def save_room_state(self, room_id: str, data: bytes) -> None:
        """The room's rules' state (members, playback), written by its home."""

    async def load_room_state(self, room_id: str) -> bytes | None: ...

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
