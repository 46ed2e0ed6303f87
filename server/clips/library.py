"""The trust library's search, for one worker (docs/groups.md): an FTS5 index of the published
clips (server/clips/search.py). Embedded, a file in the data directory; with Redis, in memory on
every worker. Either way it is built from the store's clips at start, and every publish or
unpublish on any worker reaches every worker's index through the broker at once. Pub/sub may
drop a message (a worker that lost Redis for a moment), so the index is also checked against the
store every `RECONCILE_SECONDS`: a missed change is right again within that."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from server.clips.directory import Clips
from server.clips.model import Clip
from server.clips.search import FtsIndex, LibraryDoc
from server.errors import ServiceUnavailable
from server.sync.broker import Broker
from server.sync.keys import LIBRARY_CHANNEL

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]
RECONCILE_SECONDS = 60.0


def library_doc(clip: Clip) -> LibraryDoc:
    assert clip.published is not None
    return LibraryDoc(
        clip=clip.id,
        trust=clip.trust,
        title=clip.title,
        description=clip.description,
        summary=clip.published.summary,
        notes=tuple(n.text for n in clip.notes),
        tags=tuple(tag for n in clip.notes for tag in n.tags),
        framework=clip.framework,
        published=clip.published.at,
    )


def tag_counts(clip: Clip) -> dict[str, int]:
    return dict(Counter(tag for n in clip.notes for tag in n.tags))


class TrustLibrary:
    def __init__(self, clips: Clips, broker: Broker, path: Path | None, spawn: Spawn) -> None:
        """`path`: the index's file (embedded); None keeps it in memory (with Redis)."""
        self._clips = clips
        self._broker = broker
        self._spawn = spawn
        if path is not None:  # built afresh from the store at start: the store is the truth
            path.unlink(missing_ok=True)
        self._index = FtsIndex(str(path) if path is not None else ":memory:")
        self._held: dict[str, LibraryDoc] = {}  # what the index holds, to reconcile cheaply

    async def start(self) -> None:
        await self._broker.subscribe(LIBRARY_CHANNEL, self._on_change)
        # After subscribing: a publish made meanwhile is read again, never missed. In a thread:
        # thousands of clips take seconds to index, and nothing searches before the worker
        # serves, so the index is not used by two threads at once.
        wanted = await self._wanted()
        await asyncio.to_thread(self._apply, wanted)

    async def reconcile(self) -> None:
        """Make the index hold exactly the store's published clips."""
        self._apply(await self._wanted())

    async def _wanted(self) -> dict[str, LibraryDoc]:
        return {c.id: library_doc(c) for c in await self._clips.all() if c.published}

    def _apply(self, wanted: dict[str, LibraryDoc]) -> None:
        for clip_id in set(self._held) - set(wanted):
            self._forget(clip_id)
        for clip_id, doc in wanted.items():
            if self._held.get(clip_id) != doc:
                self._put(doc)

    async def run(self) -> None:
        """Reconcile now and then, until cancelled (the worker owns the task)."""
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                await self.reconcile()
            except ServiceUnavailable as exc:  # the store is away: the next round tries again
                log.warning("the library index was not checked against the store: %s", exc)

    async def stop(self) -> None:
        await self._broker.unsubscribe(LIBRARY_CHANNEL, self._on_change)
        self._index.close()

    async def changed(self, clip_id: str) -> None:
        """The clip was published, changed, unpublished or deleted: every worker's index
        reads it again: this one before it answers, so its own next search has it."""
        await self._reread(clip_id)
        await self._broker.publish(LIBRARY_CHANNEL, clip_id.encode())

    def search(
        self, trust: str, q: str, tags: tuple[str, ...], framework: str | None, limit: int
    ) -> list[str]:
        """Clip ids, best first. Runs on the event loop: a query is a few milliseconds
        (docs/benchmarks.md, bench.library), less than handing it to a thread."""
        return self._index.search(trust, q, tags=tags, framework=framework, limit=limit)

    def _on_change(self, data: bytes) -> None:
        self._spawn(self._reread(data.decode("utf-8", "replace")), "library index")

    async def _reread(self, clip_id: str) -> None:
        clip = await self._clips.get(clip_id)
        if clip is None or clip.published is None:
            self._forget(clip_id)
        else:
            self._put(library_doc(clip))

    def _put(self, doc: LibraryDoc) -> None:
        self._index.put(doc)
        self._held[doc.clip] = doc

    def _forget(self, clip_id: str) -> None:
        self._index.remove(clip_id)
        self._held.pop(clip_id, None)
