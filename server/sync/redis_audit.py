"""The audit log in Redis (distributed mode): one stream, `cocoach:audit`, each entry one
MessagePack event under the field `e`. Redis keeps it in memory, so the stream is capped at
`audit_max_events` (approximate trimming, `MAXLEN ~`): the oldest events go first. Keep a
longer history by reading `GET /api/audit` into the trust's own archive (docs/audit.md)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from server.sync.audit import AuditEvent, AuditQuery, decode_event, encode_event, matches
from server.sync.redis_errors import unavailable

AUDIT_STREAM = "cocoach:audit"
SCAN_PAGE = 500  # entries read per XRANGE while filtering
CLOCK_MARGIN_MS = 60_000  # stream ids are Redis's clock, event times the worker's


class RedisAuditLog:
    def __init__(self, client: redis.Redis, max_events: int) -> None:
        self._client = client
        self._max = max(1, max_events)

    async def append(self, events: list[AuditEvent]) -> None:
        with unavailable("redis audit log failed"):
            pipe = self._client.pipeline(transaction=False)
            for event in events:
                pipe.xadd(
                    AUDIT_STREAM, {"e": encode_event(event)}, maxlen=self._max, approximate=True
                )
            await pipe.execute()

    async def query(self, query: AuditQuery) -> tuple[list[AuditEvent], bool]:
        start = (
            "-" if query.since is None else str(max(0, int(query.since * 1000) - CLOCK_MARGIN_MS))
        )
        if query.after is not None:
            start = f"({query.after}" if _is_stream_id(query.after) else start
        end = "+" if query.until is None else str(int(query.until * 1000) + CLOCK_MARGIN_MS)
        found: list[AuditEvent] = []
        with unavailable("redis audit log failed"):
            while len(found) <= query.limit:
                page: list[Any] = (
                    await self._client.xrange(AUDIT_STREAM, start, end, count=SCAN_PAGE) or []
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
