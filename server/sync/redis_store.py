"""Redis store for distributed mode. Run Redis with AOF for durability (docs/operations.md)."""

from __future__ import annotations

import redis.asyncio as redis

from server.errors import Conflict
from server.sync.keys import ROOMS_INDEX, room_key
from server.sync.redis_errors import unavailable
from server.sync.store import RoomRecord, decode_record, encode_record


class RedisStore:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def create_room(self, record: RoomRecord) -> None:
        with unavailable("redis store failed"):
            created = await self._client.set(
                room_key(record.id, "record"), encode_record(record), nx=True
            )
            if not created:
                raise Conflict(f"room {record.id!r} already exists")
            await self._client.sadd(ROOMS_INDEX, record.id)

    async def get_room(self, room_id: str) -> RoomRecord | None:
        with unavailable("redis store failed"):
            data = await self._client.get(room_key(room_id, "record"))
        return None if data is None else decode_record(_bytes(data))

    async def list_rooms(self) -> list[RoomRecord]:
        with unavailable("redis store failed"):
            ids = sorted(_bytes(m).decode() for m in await self._client.smembers(ROOMS_INDEX))
            # One GET per room rather than MGET: keys of different rooms may live on
            # different cluster nodes.
            records = [await self._client.get(room_key(i, "record")) for i in ids]
        return [decode_record(_bytes(r)) for r in records if r is not None]

    async def save_room_state(self, room_id: str, data: bytes) -> None:
        with unavailable("redis store failed"):
            await self._client.set(room_key(room_id, "state"), data)

    async def load_room_state(self, room_id: str) -> bytes | None:
        with unavailable("redis store failed"):
            data = await self._client.get(room_key(room_id, "state"))
        return None if data is None else _bytes(data)

    async def ping(self) -> None:
        with unavailable("redis store failed"):
            await self._client.ping()

    async def epoch(self) -> str:
        with unavailable("redis is not reachable"):
            info = await self._client.info("server")
        return str(info["run_id"])

    async def close(self) -> None:
        return None  # the client is shared; its owner closes it


def _bytes(value: bytes | str) -> bytes:
    # The client is made without decode_responses, so Redis answers bytes.
    return value if isinstance(value, bytes) else value.encode()
