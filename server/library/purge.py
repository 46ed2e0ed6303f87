"""Deleting videos whose retention has ended: the worker's background job and `cocoach purge`
share `purge_expired`, so `--dry-run` lists exactly what the job would delete.

One worker at a time runs the job, across every worker of a deployment: it holds the lease
`retention` (Redis in distributed mode) and keeps it, renewing it each round, so the same
worker purges while it lives; when it dies the lease lapses after two intervals and another
worker's next round takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from server.errors import ServiceUnavailable
from server.library.retention import Expired, select_expired
from server.sync.audit import SYSTEM, AuditEvent
from server.sync.lease import Lease
from server.sync.store import VIDEO_ID, Store

log = logging.getLogger(__name__)

LEASE = "retention"


@dataclass(frozen=True, slots=True)
class Purged:
    expired: Expired
    files: tuple[str, ...]  # relative to the library directory

    def describe(self) -> str:
        record = self.expired.record
        ended = datetime.fromtimestamp(self.expired.expired_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        files = ", ".join(self.files) or "no files"
        name = f" ({record.filename})" if record.filename else ""
        return (
            f"video {record.id} {record.title!r}{name}: {self.expired.reason} on {ended}; "
            f"files: {files}"
        )

    def event(self, by: str) -> AuditEvent:
        record = self.expired.record
        return AuditEvent(
            time=time.time(),
            action="video.purge",
            actor=SYSTEM,
            video=record.id,
            detail={
                "by": by,
                "reason": self.expired.reason,
                "title": record.title,
                "filename": record.filename,
                "files": len(self.files),
            },
        )


def files_of(root: Path, video_id: str) -> tuple[str, ...]:
    if not VIDEO_ID.match(video_id):
        return ()  # a record the library did not make (another tool's): no files of ours
    folder = root / video_id
    if not folder.is_dir():
        return ()
    return tuple(sorted(str(p.relative_to(root)) for p in folder.rglob("*") if p.is_file()))


async def purge_expired(
    store: Store,
    root: Path,
    default_days: int,
    *,
    delete: Callable[[str], Awaitable[bool]],
    noted: Callable[[Purged], Awaitable[None]],
    dry_run: bool = False,
    now: float | None = None,
) -> list[Purged]:
    """Delete (or with `dry_run` only list) every video whose retention has ended. `delete`
    removes one video's record and files; `noted` is told of each deletion once it is done."""
    moment = time.time() if now is None else now
    done: list[Purged] = []
    for item in select_expired(await store.list_videos(), moment, default_days):
        video_id = item.record.id
        files = await asyncio.to_thread(files_of, root, video_id)
        purged = Purged(item, files)
        if not dry_run:
            # Look again: since the list was read, someone may have given it a longer period.
            current = await store.get_video(video_id)
            if current is None or not select_expired([current], moment, default_days):
                continue
            await delete(video_id)
            log.info("retention: deleted %s", purged.describe())
            await noted(purged)
        done.append(purged)
    return done


Noted = Callable[[Purged], Awaitable[None]]


class RetentionJob:
    """One worker's round of `purge`, every `interval` seconds, while it holds the job's lease
    (one worker at a time runs it)."""

    def __init__(
        self,
        *,
        lease: Lease,
        holder: str,
        interval: float,
        purge: Callable[[Noted], Awaitable[list[Purged]]],
        audit: Callable[[AuditEvent], None],
    ) -> None:
        self.lease = lease
        self.holder = holder
        self.interval = max(0.05, interval)
        self._purge = purge
        self._audit = audit

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.round()
                except (OSError, ServiceUnavailable) as exc:
                    log.warning("retention round failed, trying again next round: %s", exc)
                except Exception:
                    # A bug in one round must not take the worker and its rooms down with it.
                    log.exception("retention round failed, trying again next round")
                await asyncio.sleep(self.interval)
        finally:
            with contextlib.suppress(ServiceUnavailable):
                await asyncio.shield(self.lease.release(LEASE, self.holder))

    async def round(self) -> list[Purged]:
        """One round, if this worker holds (or now takes) the job's lease."""
        if not await self.lease.acquire(LEASE, self.holder, 2 * self.interval):
            return []

        async def noted(purged: Purged) -> None:
            self._audit(purged.event("retention job"))

        return await self._purge(noted)
