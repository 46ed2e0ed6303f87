"""Redis lease: `SET key worker NX PX ttl`, renewed and released only by its holder (Lua, so
the check and the write are one step)."""

from __future__ import annotations

from server.sync.keys import fence_key, lease_key
from server.sync.redis_connect import Client
from server.sync.redis_errors import unavailable

_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: the lease, its fencing counter. A token is handed out on every success, so a second
# home of one worker (the first stepped down, its writes perhaps still in flight) is told apart.
_TAKE = """
local current = redis.call('GET', KEYS[1])
if current ~= false and current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, room: str, worker: str, ttl: float) -> bool:
        with unavailable("redis lease failed"):
            return bool(await self._acquire(keys=[lease_key(room)], args=[worker, _ms(ttl)]))

    async def take(self, room: str, worker: str, ttl: float) -> int:
        with unavailable("redis lease failed"):
            keys = [lease_key(room), fence_key(room)]
            return int(await self._take(keys=keys, args=[worker, _ms(ttl)]))

    async def renew(self, room: str, worker: str, ttl: float) -> bool:
        with unavailable("redis lease failed"):
            return bool(await self._renew(keys=[lease_key(room)], args=[worker, _ms(ttl)]))

    async def release(self, room: str, worker: str) -> None:
        with unavailable("redis lease failed"):
            await self._release(keys=[lease_key(room)], args=[worker])

    async def holder(self, room: str) -> str | None:
        with unavailable("redis lease failed"):
            value = await self._client.get(lease_key(room))
        return None if value is None else (value if isinstance(value, str) else value.decode())


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
