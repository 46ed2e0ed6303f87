"""Redis fence: each write is one Lua call that first checks the room's lease and its fencing
token (keys of the room's own hash tag, so a cluster runs it on the room's node)."""

from __future__ import annotations

from server.errors import StaleHome
from server.sync.keys import fence_key, lease_key, state_key, talk_key
from server.sync.redis_connect import Client, publish_command
from server.sync.redis_errors import unavailable
from server.sync.redis_store import RedisStore, append_talk_lua

_HOLDS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return -1
end
"""

# KEYS: lease, fence, state; ARGV: worker, token, data.
_SAVE = _HOLDS + "redis.call('SET', KEYS[3], ARGV[3])\nreturn 1\n"

# KEYS: lease, fence, talk; ARGV: worker, token, the stretch of talk, the record's bound.
_APPEND_TALK = _HOLDS + append_talk_lua("KEYS[3]", "ARGV[3]", "ARGV[4]")

# KEYS: lease, fence; ARGV: worker, token, channel, message.
_PUBLISH = _HOLDS + "return redis.call('PUBLISH', ARGV[3], ARGV[4])\n"


class RedisFence:
    def __init__(self, client: Client, store: RedisStore) -> None:
        self._store = store  # its talk record's bound, as its own append keeps it
        self._save = client.register_script(_SAVE)
        self._append_talk = client.register_script(_APPEND_TALK)
        # In a cluster, SPUBLISH: the room's channels are in the room's slot, like its keys.
        self._publish = client.register_script(
            _PUBLISH.replace("'PUBLISH'", f"'{publish_command(client)}'")
        )

    async def save_room_state(self, room: str, worker: str, token: int, data: bytes) -> None:
        keys = [lease_key(room), fence_key(room), state_key(room)]
        with unavailable("redis store failed"):
            done = await self._save(keys=keys, args=[worker, token, data])
        _check(room, worker, int(done))

    async def publish(
        self, room: str, worker: str, token: int, channel: str, message: bytes
    ) -> None:
        with unavailable("redis publish failed"):
            done = await self._publish(
                keys=[lease_key(room), fence_key(room)], args=[worker, token, channel, message]
            )
        _check(room, worker, int(done))

    async def append_talk(self, room: str, worker: str, token: int, data: bytes) -> bool:
        keys = [lease_key(room), fence_key(room), talk_key(room)]
        with unavailable("redis store failed"):
            done = await self._append_talk(
                keys=keys, args=[worker, token, data, self._store.talk_limit]
            )
        _check(room, worker, int(done))
        return bool(done)


def _check(room: str, worker: str, done: int) -> None:
    if done < 0:
        raise StaleHome(f"room {room!r}: worker {worker} no longer holds the lease")
