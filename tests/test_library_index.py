"""The trust library's index on one worker (server/clips/library.py): built from the store at
start, told of every change through the broker, and checked against the store now and then, so
a change whose message was lost is found (or gone) all the same."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import msgspec

from server.clips.directory import Clips
from server.clips.library import TrustLibrary
from server.clips.model import Clip, ClipNote, Published
from server.sync.broker import MemoryBroker
from server.sync.sqlite_store import SqliteStore
from tests.support import TIMEOUT


def a_clip(clip_id: str, title: str, published: bool) -> Clip:
    return Clip(
        id=clip_id,
        video="v1",
        media="v2",
        owner="p-tia",
        org="ashby-primary",
        trust="north",
        title=title,
        start=1.0,
        end=3.0,
        created=time.time(),
        notes=(ClipNote("n1", 0.2, None, "names on sticks", ("open-question",), "p-tia"),),
        published=Published("Every pupil answers", time.time(), "p-tia") if published else None,
    )


async def test_the_index_follows_the_store_even_when_a_message_is_lost(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3")
    clips = Clips(store)
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None], _name: str) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await clips.save(a_clip("k-1", "Questioning in Year 5", published=True))
    await clips.save(a_clip("k-2", "Private draft", published=False))
    library = TrustLibrary(clips, MemoryBroker(), tmp_path / "library.sqlite3", spawn)
    await library.start()
    try:
        # Built from the store at start: the published one only.
        assert library.search("north", "", (), None, 20) == ["k-1"]
        assert library.search("north", "sticks", ("open-question",), None, 20) == ["k-1"]
        assert library.search("south", "", (), None, 20) == []

        # A change told through the broker is in the index at once.
        draft = await clips.get("k-2")
        assert draft is not None
        await clips.save(
            msgspec.structs.replace(draft, published=Published("", time.time(), "p-tia"))
        )
        await library.changed("k-2")
        deadline = time.monotonic() + TIMEOUT
        while "k-2" not in library.search("north", "draft", (), None, 20):
            assert time.monotonic() < deadline, "the published clip never reached the index"
            await asyncio.sleep(0.01)

        # A change whose message was lost (written to the store, never told): the next check
        # against the store puts it right.
        await clips.delete("k-1")
        assert library.search("north", "questioning", (), None, 20) == ["k-1"]
        await library.reconcile()
        assert library.search("north", "questioning", (), None, 20) == []
        assert library.search("north", "", (), None, 20) == ["k-2"]
    finally:
        await library.stop()
        await store.close()
