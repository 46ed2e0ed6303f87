"""The audit log in Redis (distributed mode): one stream, `cocoach:audit`, each entry one
MessagePack event under the field `e`. Redis keeps it in memory, so the stream is capped at
`audit_max_events` (approximate trimming, `MAXLEN ~`): the oldest events go first. Keep a
longer history by reading `GET /api/audit` into the trust's own archive (docs/audit.md)."""

from __future__ import annotations

from typing import Any

from server.sync.audit import AuditEvent, AuditQuery, decode_event, encode_event, matches
from server.sync.keys import AUDIT_STREAM
from server.sync.redis_connect import Client
from server.sync.redis_errors import unavailable

SCAN_PAGE = 500  # entries read per XRANGE while filtering

# Entry ids follow the events' own times (milliseconds), never going below the last id: an
# event from a worker whose clock is behind gets the last id's time. So an id is never earlier
# than its event, and a `since` query may start reading at `since` itself.
_APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local ms, seq = 0, -1
if #last > 0 then
  local dash = string.find(last[1][1], '-', 1, true)
  ms = tonumber(string.sub(last[1][1], 1, dash - 1))
  seq = tonumber(string.sub(last[1][1], dash + 1))
end
for i = 2, #ARGV, 2 do
  local t = tonumber(ARGV[i])
  if t > ms then ms, seq = t, 0 else seq = seq + 1 end
  if ms == 0 and seq == 0 then seq = 1 end
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ms .. '-' .. seq, 'e', ARGV[i + 1])
end
return #ARGV
"""


class RedisAuditLog:
    def __init__(self, client: Client, max_events: int, stream: str = AUDIT_STREAM) -> None:
        self._client = client
        self._max = max(1, max_events)
        self.stream = stream
        self._append = client.register_script(_APPEND)

    async def append(self, events: list[AuditEvent]) -> None:
        args: list[bytes | int] = [self._max]
        for event in events:
            args += [max(0, int(event.time * 1000)), encode_event(event)]
        with unavailable("redis audit log failed"):
            await self._append(keys=[self.stream], args=args)

    async def query(self, query: AuditQuery) -> tuple[list[AuditEvent], bool]:
        start = "-" if query.since is None else str(max(0, int(query.since * 1000)))
        if query.after is not None and _is_stream_id(query.after):
            start = f"({query.after}"  # past the page already read; ids only grow, so past since
        # No end bound from `until`: an event from a worker whose clock was behind may carry an
        # id later than its own time. The scan stops once more than `limit` events matched.
        end = "+"
        found: list[AuditEvent] = []
        with unavailable("redis audit log failed"):
            while len(found) <= query.limit:
                page: list[Any] = (
                    await self._client.xrange(self.stream, start, end, count=SCAN_PAGE) or []
                )
                for raw_id, fields in page:
                    event = decode_event(_bytes(fields[b"e"]), _bytes(raw_id).decode())
                    if matches(event, query):
                        found.append(event)
                if len(page) < SCAN_PAGE:
                    break
                start = "(" + _bytes(page[-1][0]).decode()
        return found[: query.limit], len(found) > query.limit

    async def close(self) -> None:
        return None  # the client is shared; its owner closes it


def _is_stream_id(text: str) -> bool:
    ms, _, seq = text.partition("-")
    return ms.isdigit() and seq.isdigit()


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
