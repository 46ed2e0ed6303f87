"""A room nobody writes to goes cold (its replica dropped, its state kept as bytes), and the
rules still hold when it gets hot again: what a note was before a change is then read from the
committed bytes, not from facts the worker learnt while hot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pycrdt import Array, Map

from server.session.document import RoomDocument
from tests.support import TIMEOUT, make_settings, serve_in_process, token
from tests.test_documents import note
from tests.yclient import ydoc


async def _create(data: Path, *rooms: str) -> None:
    from server.sync.sqlite_store import SqliteStore
    from server.sync.store import RoomRecord

    store = SqliteStore(data / "cocoach.sqlite3")
    for room in rooms:
        await store.create_room(RoomRecord(id=room, title="Lesson", created=0.0))
    await store.close()


async def _until_cold(worker: Any, room: str) -> RoomDocument:
    async with asyncio.timeout(TIMEOUT):
        while True:
            document: RoomDocument | None = worker.documents.open_rooms.get(room)
            if document is not None and document.hot is None:
                return document
            await asyncio.sleep(0.05)


async def test_a_cold_room_serves_its_state_and_judges_by_what_was_committed(
    tmp_path: Path,
) -> None:
    await _create(tmp_path, "r1")
    settings = make_settings(tmp_path, doc_hot_seconds=0.2, heartbeat_interval=0.1)
    async with (
        serve_in_process(settings) as server,
        ydoc(server.base, "r1", token("r1", "coach", "Ann")) as ann,
        ydoc(server.base, "r1", token("r1", "teacher", "Tess")) as tess,
    ):
        worker = server.server.config.app.state.worker  # type: ignore[attr-defined]
        ann.timeline["n1"] = note(10.0, replies=Array([]))
        ann.timeline["n2"] = note(20.0)
        ann.plan += "Wait time after questions"
        await ann.flush()
        await tess.until(lambda: "n2" in tess.timeline)
        tess.timeline["n3"] = note(30.0, author="user:tess")
        await tess.flush()
        await ann.until(lambda: "n3" in ann.timeline)

        document = await _until_cold(worker, "r1")
        assert document.facts == {} and document.watch is None
        # A joiner to a cold room is served from the bytes.
        async with ydoc(server.base, "r1", token("r1", "observer", "Obi")) as obi:
            assert set(obi.timeline.keys()) == {"n1", "n2", "n3"}
            assert str(obi.plan) == "Wait time after questions"
        assert document.hot is None

        # Tess may not rewrite Ann's note: "before" comes from the committed bytes.
        tess.timeline["n1"]["text"] = "rewritten by Tess"
        await tess.flush()
        assert "only its author" in await asyncio.wait_for(tess.denied.get(), TIMEOUT)
        await _until_cold(worker, "r1")
        # Ann may not delete Tess's note, even with the room cold between the two.
        async with ydoc(server.base, "r1", token("r1", "coach", "Ann")) as ann2:
            del ann2.timeline["n3"]
            await ann2.flush()
            assert "only its author may delete" in await asyncio.wait_for(
                ann2.denied.get(), TIMEOUT
            )
        await _until_cold(worker, "r1")
        async with ydoc(server.base, "r1", token("r1", "teacher", "Tess")) as tess2:
            assert str(tess2.timeline["n1"]["text"]) == "open question"  # rolled back
            tess2.timeline["n1"]["replies"].append(
                Map({"author": "user:tess", "text": "agreed", "created": 2.0})
            )
            await tess2.flush()
            await ann.until(lambda: len(ann.timeline["n1"]["replies"]) == 1)
        del ann.timeline["n1"]
        await ann.flush()
        async with ydoc(server.base, "r1", token("r1", "observer", "Obi")) as obi:
            assert set(obi.timeline.keys()) == {"n2", "n3"}
            assert "n3" in obi.timeline and obi.timeline["n3"]["author"] == "user:tess"


async def test_many_edits_while_cold_elsewhere_fold_into_one_state(tmp_path: Path) -> None:
    """The bytes a cold room keeps are folded as updates arrive, and stay exactly the room."""
    await _create(tmp_path, "r2")
    settings = make_settings(
        tmp_path, doc_hot_seconds=0.2, heartbeat_interval=0.1, yjs_rate_burst=1000.0
    )
    async with (
        serve_in_process(settings) as server,
        ydoc(server.base, "r2", token("r2", "coach", "Ann")) as ann,
    ):
        worker = server.server.config.app.state.worker  # type: ignore[attr-defined]
        for i in range(300):  # one update each, more than FOLD_ENTRIES
            ann.timeline[f"n{i}"] = note(float(i))
            await ann.flush()
        document: RoomDocument = worker.documents.open_rooms["r2"]
        assert len(document.tail) < 256  # folded as it went
        await _until_cold(worker, "r2")
        async with ydoc(server.base, "r2", token("r2", "teacher", "Tess")) as tess:
            assert len(tess.timeline) == 300
            assert tess.doc.get_state() == document.state_vector()
