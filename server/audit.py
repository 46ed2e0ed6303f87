"""`worker.audit`: record audit events without ever making a room wait (docs/audit.md).

`record()` only puts the event on a bounded queue; one writer task per worker, owned by the
worker's TaskGroup, appends batches to the log. When the log cannot be reached the writer
retries with backoff while the queue fills; past `audit_queue` events are dropped, counted
and logged, because stalling every room of the worker would be worse than a gap in the log
(which the log line then records).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import msgspec

from server.errors import ServiceUnavailable
from server.sync.audit import ADMIN, Actor, AuditAction, AuditEvent, AuditLog, DetailValue
from server.tokens import Claims

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

log = logging.getLogger(__name__)

BATCH = 500  # events appended in one call
DRAIN_SECONDS = 3.0  # a stopping worker spends at most this writing what is still queued
MAX_BACKOFF = 5.0


def actor_of(claims: Claims | None) -> Actor:
    """The token's holder, or the admin key's when there are no claims."""
    if claims is None:
        return ADMIN
    return Actor(sub=claims.sub, name=claims.name, role=claims.role.value, org=claims.org)


def remote_of(connection: HTTPConnection) -> str | None:
    """The client's address as this worker sees it (behind a proxy: the proxy's, unless the
    server trusts its forwarded headers)."""
    return connection.client.host if connection.client else None


class AuditRecorder:
    def __init__(self, audit_log: AuditLog, worker_id: str, queue_size: int) -> None:
        self.log = audit_log
        self.worker_id = worker_id
        self.dropped = 0
        self._queue: asyncio.Queue[AuditEvent] = asyncio.Queue(maxsize=max(1, queue_size))
        self._batch: list[AuditEvent] = []  # taken off the queue, not yet stored

    def record(
        self,
        action: AuditAction,
        actor: Actor,
        *,
        room: str | None = None,
        video: str | None = None,
        remote: str | None = None,
        **detail: DetailValue,
    ) -> None:
        self.add(
            AuditEvent(
                time=time.time(),
                action=action,
                actor=actor,
                room=room,
                video=video,
                remote=remote,
                detail=detail,
            )
        )

    def add(self, event: AuditEvent) -> None:
        """Queue a ready-made event; never waits."""
        event = msgspec.structs.replace(event, worker=self.worker_id)
        action, actor = event.action, event.actor
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "audit queue full (%d events): dropped %s by %s; %d dropped so far",
                    self._queue.maxsize,
                    action,
                    actor.sub,
                    self.dropped,
                )

    async def run(self) -> None:
        """The writer: until cancelled."""
        while True:
            if not self._batch:
                self._batch.append(await self._queue.get())
                while len(self._batch) < BATCH and not self._queue.empty():
                    self._batch.append(self._queue.get_nowait())
            await self._store_batch()

    async def _store_batch(self) -> None:
        delay = 0.1
        failing = False
        while True:
            try:
                await self.log.append(self._batch)
            except ServiceUnavailable as exc:
                if not failing:
                    log.warning("audit log unreachable, retrying: %s", exc)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            if failing:
                log.warning("audit log reachable again")
            self._batch = []
            return

    async def drain(self) -> None:
        """Write what is still queued, once the writer has stopped (the worker is stopping)."""
        while not self._queue.empty():
            self._batch.append(self._queue.get_nowait())
        if not self._batch:
            return
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                await self._store_batch()
        except TimeoutError:
            log.warning("audit log unreachable at shutdown: %d events lost", len(self._batch))
