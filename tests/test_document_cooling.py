"""A room nobody writes to goes cold (its replica dropped, its state kept as bytes), and the
rules still hold when it gets hot again: what a note was before a change is then read from the
committed bytes, not from facts the worker learnt while hot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map

from server.session.doc_state import DocState
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
            if document is not None and document.content.hot is None:
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
        assert document.content.facts == {} and document.content.watch is None
        # A joiner to a cold room is served from the bytes.
        async with ydoc(server.base, "r1", token("r1", "observer", "Obi")) as obi:
            assert set(obi.timeline.keys()) == {"n1", "n2", "n3"}
            assert str(obi.plan) == "Wait time after questions"
        assert document.content.hot is None

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


def test_the_bytes_fold_as_updates_come_and_stay_exactly_the_room() -> None:
    """A cold room folds its tail into one state as updates arrive; a hot one folds far less
    often (it serves from its replica) and all of it on cooling; the bytes are the room."""
    source: Doc[Any] = Doc()
    timeline = source.get("timeline", type=Map)
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    for i in range(700):
        timeline[f"n{i}"] = note(float(i))
    document = DocState("r")
    for update in updates[:400]:
        document.commit(update)
    assert len(document.tail) < 400  # folded on the way (each fold point at 192-320 updates)
    document.heat()
    for update in updates[400:]:
        document.commit(update)
        document.hot.apply_update(update)  # type: ignore[union-attr]
    assert len(document.tail) >= 300  # hot: not folded since
    document.cool()
    assert document.tail == [] and document.hot is None
    replica: Doc[Any] = Doc()
    replica.apply_update(document.committed())
    assert len(replica.get("timeline", type=Map)) == 700
    assert document.state_vector() == source.get_state()
