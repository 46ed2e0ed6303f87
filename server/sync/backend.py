"""Open the backends a worker runs on: embedded or Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from server.settings import Settings
from server.sync.audit import AuditLog
from server.sync.broker import Broker, MemoryBroker
from server.sync.doclog import DocLog
from server.sync.fence import Fence, MemoryFence
from server.sync.lease import Lease, MemoryLease
from server.sync.redis_audit import RedisAuditLog
from server.sync.redis_broker import RedisBroker
from server.sync.redis_connect import connected
from server.sync.redis_doclog import RedisDocLog
from server.sync.redis_fence import RedisFence
from server.sync.redis_lease import RedisLease
from server.sync.redis_store import RedisStore
from server.sync.sqlite_audit import SqliteAuditLog
from server.sync.sqlite_doclog import SqliteDocLog
from server.sync.sqlite_store import SqliteStore
from server.sync.store import Store


@dataclass(frozen=True)
class Backend:
    kind: str  # "embedded" | "redis"
    broker: Broker
    store: Store
    lease: Lease
    fence: Fence  # the writes a room's home makes, checked against its lease
    doclog: DocLog
    audit: AuditLog


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The store alone, for the CLI's one-shot commands."""
    if settings.redis is None:
        # Records made before organisations were configured get the default one (once).
        default_org = settings.default_org if settings.orgs.strip() else None
        sqlite = SqliteStore(settings.data / "cocoach.sqlite3", default_org)
        try:
            yield sqlite
        finally:
            await sqlite.close()
        return
    async with connected(settings.redis) as client:
        yield RedisStore(client)


@asynccontextmanager
async def open_audit(settings: Settings) -> AsyncIterator[AuditLog]:
    """The audit log alone, for the CLI (purge records what it deletes)."""
    if settings.redis is None:
        sqlite = SqliteAuditLog(settings.data / "audit.sqlite3")
        try:
            yield sqlite
        finally:
            await sqlite.close()
        return
    async with connected(settings.redis) as client:
        yield RedisAuditLog(client, settings.audit_max_events)


@asynccontextmanager
async def open_backend(settings: Settings) -> AsyncIterator[Backend]:
    """Yield the backends with their background readers running; stop them on exit."""
    if settings.redis is None:
        async with open_store(settings) as store, open_audit(settings) as audit:
            doclog = SqliteDocLog(settings.data / "documents.sqlite3")
            memory_broker, lease = MemoryBroker(), MemoryLease()
            fence = MemoryFence(lease, store, memory_broker)
            try:
                yield Backend("embedded", memory_broker, store, lease, fence, doclog, audit)
            finally:
                await doclog.close()
        return
    async with connected(settings.redis) as client:
        broker = RedisBroker(client, drop_rate=settings.test_drop_pubsub)
        store = RedisStore(client)
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(broker.run(), name="redis-subscriber")
                try:
                    yield Backend(
                        "redis",
                        broker,
                        store,
                        RedisLease(client),
                        RedisFence(client, store),
                        RedisDocLog(
                            client,
                            broker,
                            wait_replicas=settings.redis_wait_replicas,
                            wait_ms=settings.redis_wait_ms,
                        ),
                        RedisAuditLog(client, settings.audit_max_events),
                    )
                finally:
                    reader.cancel()
        finally:
            await broker.close()
