"""Redis DocLog: a stream per room as the write-ahead log, and pub/sub to announce entries.

Appending a batch is one Lua call (per room, XADD + PUBLISH of [worker, prev, id, update]), so
announcements go out in log order and `prev` always names the entry before. Subscriptions ride
on the worker's one subscriber connection (the RedisBroker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from server.errors import ServiceUnavailable
from server.sync.doclog import NO_ENTRY, DocEntry, EntryCallback, Loaded, id_key
from server.sync.keys import doc_channel, room_key
from server.sync.redis_broker import RedisBroker
from server.sync.redis_connect import Client, publish_command, sharded
from server.sync.redis_errors import unavailable

# Appends a batch of rooms' entries in one call: KEYS are each room's three keys (stream, last
# id, channel) in turn, ARGV the worker then each room's update; returns prev and id for each
# room, flat. The quiet variant does not announce: its caller waits for replicas first.
_APPEND_MANY_QUIET = """
local out = {}
for i = 2, #ARGV do
  local k = (i - 2) * 3
  local prev = redis.call('GET', KEYS[k + 2]) or '0-0'
  local id = redis.call('XADD', KEYS[k + 1], '*', 'w', ARGV[1], 'u', ARGV[i])
  redis.call('SET', KEYS[k + 2], id)
  --announce--
  out[#out + 1] = prev
  out[#out + 1] = id
end
return out
"""
_ANNOUNCE = "ARGV[1] .. '\\n' .. prev .. '\\n' .. id .. '\\n' .. ARGV[i]"
_APPEND_MANY = _APPEND_MANY_QUIET.replace(
    "--announce--", f"redis.call('PUBLISH', KEYS[k + 3], {_ANNOUNCE})"
)

_COMPACT = """
local current = tonumber(redis.call('HGET', KEYS[2], 'ms') or '-1')
local current_seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '-1')
local ms, seq = tonumber(ARGV[2]), tonumber(ARGV[3])
if ms > current or (ms == current and seq > current_seq) then
  redis.call('HSET', KEYS[2], 'data', ARGV[1], 'ms', ARGV[2], 'seq', ARGV[3], 'upto', ARGV[4])
  redis.call('XTRIM', KEYS[1], 'MINID', ARGV[5])
end
return redis.call('XLEN', KEYS[1])
"""


def _keys(room: str) -> tuple[str, str, str]:
    return room_key(room, "doc:log"), room_key(room, "doc:last"), doc_channel(room)


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode()


def _entries(worker: str, items: list[tuple[str, bytes]], flat: list[Any]) -> list[DocEntry]:
    return [
        DocEntry(worker, _text(flat[2 * i]), _text(flat[2 * i + 1]), update)
        for i, (_room, update) in enumerate(items)
    ]


def _announcement(entry: DocEntry) -> bytes:
    """As the append script announces: worker, prev, id, update, one per line."""
    head = f"{entry.worker}\n{entry.prev}\n{entry.id}\n".encode()
    return head + entry.update


def parse_announcement(data: bytes) -> DocEntry:
    worker, prev, entry_id, update = data.split(b"\n", 3)
    return DocEntry(worker.decode(), prev.decode(), entry_id.decode(), update)


class RedisDocLog:
    def __init__(
        self,
        client: Client,
        broker: RedisBroker,
        *,
        wait_replicas: int = 0,
        wait_ms: int = 1000,
    ) -> None:
        """`wait_replicas`: an append returns (and is announced) only once that many replicas
        have it, waiting at most `wait_ms`; fewer raise ServiceUnavailable."""
        self._client = client
        self._broker = broker
        self._wait_replicas = wait_replicas
        self._wait_ms = wait_ms
        self._sharded = sharded(client)
        self._append_many = client.register_script(
            _APPEND_MANY.replace("'PUBLISH'", f"'{publish_command(client)}'")
        )
        self._append_quiet = client.register_script(_APPEND_MANY_QUIET)
        self._compact = client.register_script(_COMPACT)
        self._wrappers: dict[tuple[str, EntryCallback], Callable[[bytes], None]] = {}

    async def append(self, room: str, worker: str, update: bytes) -> DocEntry:
        (entry,) = await self.append_many(worker, [(room, update)])
        return entry

    async def append_many(self, worker: str, items: list[tuple[str, bytes]]) -> list[DocEntry]:
        if "\n" in worker:
            raise ValueError("worker ids cannot hold a newline")
        if not items:
            return []
        if not self._sharded:
            return await self._append_slot(worker, items)
        # A cluster runs a script on one slot's node: one call per slot, all at once.
        slots: dict[int, list[int]] = {}
        for i, (room, _update) in enumerate(items):
            slots.setdefault(key_slot(room_key(room, "doc:log").encode()), []).append(i)
        batches = await asyncio.gather(
            *(self._append_slot(worker, [items[i] for i in held]) for held in slots.values())
        )
        entries: list[DocEntry | None] = [None] * len(items)
        for held, batch in zip(slots.values(), batches, strict=True):
            for i, entry in zip(held, batch, strict=True):
                entries[i] = entry
        return [entry for entry in entries if entry is not None]

    async def _append_slot(self, worker: str, items: list[tuple[str, bytes]]) -> list[DocEntry]:
        """Append rooms' entries whose keys share a node (all of them, without a cluster)."""
        keys: list[str] = []
        for room, _update in items:
            keys.extend(_keys(room))
        args: list[str | bytes] = [worker, *(u for _, u in items)]
        with unavailable("redis doc log append failed"):
            if self._wait_replicas:
                return await self._append_replicated(worker, items, keys, args)
            # One command for the whole batch: a request per room would take as many pooled
            # connections (or pipeline entries to pack and parse) as there are busy rooms.
            flat = await self._append_many(keys=keys, args=args)
        return _entries(worker, items, flat)

    async def _append_replicated(
        self, worker: str, items: list[tuple[str, bytes]], keys: list[str], args: list[str | bytes]
    ) -> list[DocEntry]:
        # WAIT counts the replicas that have this connection's writes: one pipeline, so the
        # append and the WAIT share a connection (in a cluster: the slot's node's).
        try:
            flat, replicas = await self._append_and_wait(keys, args)
        except NoScriptError:  # a promoted replica may not have loaded the script yet
            await self._client.script_load(self._append_quiet.script)
            flat, replicas = await self._append_and_wait(keys, args)
        if int(replicas) < self._wait_replicas:
            raise ServiceUnavailable(
                f"{replicas} of {self._wait_replicas} Redis replicas have the edit "
                f"after {self._wait_ms} ms (COCOACH_REDIS_WAIT_REPLICAS)"
            )
        entries = _entries(worker, items, flat)
        async with self._client.pipeline(transaction=False) as pipe:
            for (room, _update), entry in zip(items, entries, strict=True):
                if self._sharded:
                    pipe.spublish(doc_channel(room), _announcement(entry))
                else:
                    pipe.publish(doc_channel(room), _announcement(entry))
            await pipe.execute()
        return entries

    async def _append_and_wait(self, keys: list[str], args: list[str | bytes]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            if isinstance(self._client, RedisCluster):
                node = self._client.get_node_from_key(keys[0])
                pipe.evalsha(self._append_quiet.sha, len(keys), *keys, *args)
                pipe.wait(self._wait_replicas, self._wait_ms, target_nodes=node)
            else:
                await self._append_quiet(keys=keys, args=args, client=pipe)  # type: ignore[arg-type]
                pipe.wait(self._wait_replicas, self._wait_ms)
            return list(await pipe.execute())

    async def subscribe(self, room: str, callback: EntryCallback) -> None:
        def on_message(data: bytes) -> None:
            callback(parse_announcement(data))

        self._wrappers[(room, callback)] = on_message
        await self._broker.subscribe(doc_channel(room), on_message)

    async def unsubscribe(self, room: str, callback: EntryCallback) -> None:
        wrapper = self._wrappers.pop((room, callback), None)
        if wrapper is not None:
            await self._broker.unsubscribe(doc_channel(room), wrapper)

    async def load(self, room: str) -> Loaded:
        stream, _, _ = _keys(room)
        with unavailable("redis doc log load failed"):
            snap: dict[bytes, bytes] = await self._client.hgetall(room_key(room, "doc:snap"))  # type: ignore[assignment]
            upto = _text(snap[b"upto"]) if snap else None
            entries = await self._range(stream, upto or NO_ENTRY)
        last = entries[-1].id if entries else (upto or NO_ENTRY)
        return Loaded(snap[b"data"] if snap else None, entries, last)

    async def read_after(self, room: str, after: str) -> list[DocEntry]:
        with unavailable("redis doc log read failed"):
            return await self._range(_keys(room)[0], after)

    async def _range(self, stream: str, after: str) -> list[DocEntry]:
        rows: list[Any] = await self._client.xrange(stream, min=f"({after}", max="+") or []
        entries, prev = [], after
        for raw_id, fields in rows:
            entry_id = _text(raw_id)
            entries.append(DocEntry(_text(fields[b"w"]), prev, entry_id, fields[b"u"]))
            prev = entry_id
        return entries

    async def compact(self, room: str, snapshot: bytes, upto: str) -> int:
        ms, seq = id_key(upto)
        stream = _keys(room)[0]
        with unavailable("redis doc log compaction failed"):
            remaining = await self._compact(
                keys=[stream, room_key(room, "doc:snap")],
                args=[snapshot, ms, seq, upto, f"{ms}-{seq + 1}"],
            )
        return int(remaining)

    async def length(self, room: str) -> int:
        with unavailable("redis doc log failed"):
            return int(await self._client.xlen(_keys(room)[0]))

    async def last_id(self, room: str) -> str:
        with unavailable("redis doc log failed"):
            value = await self._client.get(_keys(room)[1])
        return NO_ENTRY if value is None else _text(value)
