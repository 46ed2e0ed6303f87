"""Redis store for distributed mode. Run Redis with AOF for durability (docs/operations.md)."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from server.errors import Conflict
from server.sync.keys import (
    ROOMS_INDEX,
    VIDEOS_INDEX,
    records_key,
    room_key,
    state_key,
    talk_key,
    video_key,
)
from server.sync.redis_connect import Client
from server.sync.redis_errors import unavailable
from server.sync.store import (
    MAX_TALK_SEGMENTS,
    RoomRecord,
    VideoRecord,
    decode_record,
    decode_video,
    encode_record,
    encode_video,
)

# Appends one stretch of talk unless the list already holds the bound (ARGV[2]): the check and
# the push are one step, so concurrent appenders never take it past the bound.
# HGET and HDEL as one step: of two takers, one gets the record.
_TAKE_RECORD = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then redis.call('HDEL', KEYS[1], ARGV[1]) end
return value
"""


def append_talk_lua(key: str, data: str, limit: str) -> str:
    """The talk record's bounded append, as Lua on the script's `key`, `data` and `limit` (the
    room's home runs it behind its fence: redis_fence.py)."""
    return f"""
if redis.call('LLEN', {key}) >= tonumber({limit}) then
  return 0
end
redis.call('RPUSH', {key}, {data})
return 1
"""


_APPEND_TALK = append_talk_lua("KEYS[1]", "ARGV[1]", "ARGV[2]")


class RedisStore:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._append_talk = client.register_script(_APPEND_TALK)
        self._take_record = client.register_script(_TAKE_RECORD)
        self.talk_limit = MAX_TALK_SEGMENTS

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

    async def update_room(self, record: RoomRecord) -> bool:
        with unavailable("redis store failed"):
            written = await self._client.set(
                room_key(record.id, "record"), encode_record(record), xx=True
            )
        return bool(written)

    async def save_room_state(self, room_id: str, data: bytes) -> None:
        with unavailable("redis store failed"):
            await self._client.set(state_key(room_id), data)

    async def seed_room_state(self, room_id: str, data: bytes) -> bool:
        with unavailable("redis store failed"):
            return bool(await self._client.set(state_key(room_id), data, nx=True))

    async def load_room_state(self, room_id: str) -> bytes | None:
        with unavailable("redis store failed"):
            data = await self._client.get(state_key(room_id))
        return None if data is None else _bytes(data)

    async def append_talk(self, room_id: str, data: bytes) -> bool:
        with unavailable("redis store failed"):
            added = await self._append_talk(keys=[talk_key(room_id)], args=[data, self.talk_limit])
        return bool(added)

    async def load_talk(self, room_id: str) -> list[bytes]:
        with unavailable("redis store failed"):
            items = await self._client.lrange(talk_key(room_id), 0, -1)
        return [_bytes(item) for item in items]

    async def delete_talk(self, room_id: str) -> None:
        with unavailable("redis store failed"):
            await self._client.delete(talk_key(room_id))

    async def put_record(self, kind: str, key: str, data: bytes) -> None:
        with unavailable("redis store failed"):
            await self._client.hset(records_key(kind), key, data)

    async def get_record(self, kind: str, key: str) -> bytes | None:
        with unavailable("redis store failed"):
            data = await self._client.hget(records_key(kind), key)
        return None if data is None else _bytes(data)

    async def delete_record(self, kind: str, key: str) -> bool:
        with unavailable("redis store failed"):
            return bool(await self._client.hdel(records_key(kind), key))

    async def take_record(self, kind: str, key: str) -> bytes | None:
        with unavailable("redis store failed"):
            data = await self._take_record(keys=[records_key(kind)], args=[key])
        return None if data is None else _bytes(data)

    async def list_records(self, kind: str) -> list[bytes]:
        with unavailable("redis store failed"):
            values = await self._client.hvals(records_key(kind))
        return [_bytes(value) for value in values]

    async def put_video(self, record: VideoRecord) -> None:
        with unavailable("redis store failed"):
            # The index first: a record is never left where list_videos cannot find it.
            await self._client.sadd(VIDEOS_INDEX, record.id)
            await self._client.set(video_key(record.id), encode_video(record))

    async def update_video(self, record: VideoRecord) -> bool:
        with unavailable("redis store failed"):
            written = await self._client.set(video_key(record.id), encode_video(record), xx=True)
        return bool(written)

    async def get_video(self, video_id: str) -> VideoRecord | None:
        with unavailable("redis store failed"):
            data = await self._client.get(video_key(video_id))
        return None if data is None else decode_video(_bytes(data))

    async def list_videos(self) -> list[VideoRecord]:
        with unavailable("redis store failed"):
            ids = [_bytes(m).decode() for m in await self._client.smembers(VIDEOS_INDEX)]
            # Each video is its own hash tag, so no MGET; a pipeline is one round trip.
            pipe = self._client.pipeline(transaction=False)
            for video_id in ids:
                pipe.get(video_key(video_id))
            found = await pipe.execute()
        records = [decode_video(_bytes(r)) for r in found if r is not None]
        return sorted(records, key=lambda r: (r.created, r.id))

    async def delete_video(self, video_id: str) -> bool:
        with unavailable("redis store failed"):
            deleted = await self._client.delete(video_key(video_id))
            await self._client.srem(VIDEOS_INDEX, video_id)
        return bool(deleted)

    async def ping(self) -> None:
        with unavailable("redis store failed"):
            await self._client.ping()

    async def epoch(self) -> str:
        """Redis's run id; a cluster's primaries' together, so that a failover counts as a
        restart too (the promoted replica may lack the last writes: the workers re-seed)."""
        with unavailable("redis is not reachable"):
            if isinstance(self._client, RedisCluster):
                nodes = await self._client.info("server", target_nodes=RedisCluster.PRIMARIES)
                return ",".join(sorted(str(info["run_id"]) for info in nodes.values()))
            info = await self._client.info("server")
        return str(info["run_id"])

    async def close(self) -> None:
        return None  # the client is shared; its owner closes it


def _bytes(value: bytes | str) -> bytes:
    # The client is made without decode_responses, so Redis answers bytes.
    return value if isinstance(value, bytes) else value.encode()
