"""The shared plan and timeline over the y-websocket protocol, on a real embedded server."""

from __future__ import annotations

import asyncio
import contextlib

from pycrdt import Array, Map

from server import yjs_wire
from tests.support import TIMEOUT, Running, make_settings, serve_in_process, token
from tests.yclient import state_vector, ydoc


def note(
    start: object, text: str = "open question", author: str = "user:ann", **extra: object
) -> Map:  # type: ignore[type-arg]
    return Map(
        {
            "start": start,
            "text": text,
            "tags": Array(["open"]),
            "author": author,
            "created": 1.0,
            **extra,
        }
    )


async def test_two_clients_co_edit_plan_and_timeline(embedded: Running) -> None:
    async with (
        ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann,
        ydoc(embedded.base, "r1", token("r1", "teacher", "Tess")) as tess,
    ):
        assert ann.meta["title"] == "Lesson one"  # seeded from the room record
        ann.plan += "Try think-pair-share; see 12:03."
        ann.timeline["n1"] = note(723.0)
        await ann.flush()
        await tess.until(lambda: "n1" in tess.timeline and len(tess.plan) > 0)
        assert str(tess.plan) == "Try think-pair-share; see 12:03."
        assert tess.timeline["n1"]["start"] == 723.0

        tess.timeline["n2"] = note(800.0, "wait time", author="user:tess", end=840.0)
        tess.plan.insert(0, "Plan: ")
        await tess.flush()
        await ann.until(lambda: "n2" in ann.timeline and str(ann.plan).startswith("Plan: "))
        assert state_vector(ann.doc.get_state()) == state_vector(tess.doc.get_state())


async def test_observers_read_but_cannot_write(embedded: Running) -> None:
    async with ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann:
        ann.plan += "only coaches and teachers write"
        await ann.flush()
        async with ydoc(embedded.base, "r1", token("r1", "observer", "Obi")) as obi:
            await obi.until(lambda: len(obi.plan) > 0)
            obi.plan += " -- observer was here"
            await obi.flush()
            reason = await asyncio.wait_for(obi.denied.get(), TIMEOUT)
            assert "may not edit the plan" in reason
            await asyncio.sleep(0.2)
            assert str(ann.plan) == "only coaches and teachers write"
        # Not stored either: a new reader sees the plan without the observer's text.
        async with ydoc(embedded.base, "r1", token("r1", "teacher", "Tess")) as tess:
            assert str(tess.plan) == "only coaches and teachers write"


async def test_updates_that_break_the_model_are_refused(embedded: Running) -> None:
    async with ydoc(embedded.base, "r1", token("r1", "teacher", "Tess")) as tess:
        cases = [
            (lambda c: c.timeline.__setitem__("bad1", note("twelve")), "start"),
            (
                lambda c: c.timeline.__setitem__("bad2", note(5.0, author="user:someone-else")),
                "author must be you",
            ),
            (lambda c: c.timeline.__setitem__("bad3", "just a string"), "bad3"),
            (lambda c: c.doc.get("evil", type=Map).__setitem__("x", 1), "unknown shared type"),
        ]
        for make, words in cases:
            # Each from a fresh document: after a refusal, a client must start a new one.
            async with ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann:
                make(ann)
                await ann.flush()
                reason = await asyncio.wait_for(ann.denied.get(), TIMEOUT)
                assert words in reason, (words, reason)
        # A good edit after all that still goes through, and Tess never saw the bad ones.
        async with ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann:
            ann.timeline["good"] = note(12.0)
            await ann.flush()
            await tess.until(lambda: "good" in tess.timeline)
        assert set(tess.timeline.keys()) == {"good"}


async def test_a_client_with_a_refused_change_is_refused_until_it_reloads(
    embedded: Running,
) -> None:
    """Its later updates would build on the refused one: other Yjs clients would hold them
    back while pycrdt applies them. Refusing them keeps every other client in agreement."""
    async with (
        ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann,
        ydoc(embedded.base, "r1", token("r1", "teacher", "Tess")) as tess,
    ):
        ann.plan += "first "
        await ann.flush()
        await tess.until(lambda: str(tess.plan) == "first ")
        ann.timeline["x"] = note(1.0, author="user:not-ann")
        await ann.flush()
        assert "author must be you" in await asyncio.wait_for(ann.denied.get(), TIMEOUT)
        ann.plan += "second"
        await ann.flush()
        assert "start a new document" in await asyncio.wait_for(ann.denied.get(), TIMEOUT)
        # A fresh document (a reload) is a new Yjs client: it edits again.
        async with ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as reloaded:
            assert str(reloaded.plan) == "first "
            reloaded.plan += "again"
            await reloaded.flush()
            await tess.until(lambda: str(tess.plan) == "first again")


async def test_only_the_author_changes_a_note_others_reply(embedded: Running) -> None:
    async with (
        ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann,
        ydoc(embedded.base, "r1", token("r1", "teacher", "Tess")) as tess,
    ):
        ann.timeline["n1"] = note(30.0, replies=Array([]))
        await ann.flush()
        await tess.until(lambda: "n1" in tess.timeline)
        tess.timeline["n1"]["text"] = "rewritten by Tess"
        await tess.flush()
        assert "only its author" in await asyncio.wait_for(tess.denied.get(), TIMEOUT)
        # Her refused change stays on her side; a fresh connection gets the real note.
        async with ydoc(embedded.base, "r1", token("r1", "teacher", "Tess")) as tess2:
            tess2.timeline["n1"]["replies"].append(
                Map({"author": "user:tess", "text": "agreed", "created": 2.0})
            )
            await tess2.flush()
            await ann.until(lambda: len(ann.timeline["n1"]["replies"]) == 1)
        del ann.timeline["n1"]
        await ann.flush()
        await tess.until(lambda: "n1" not in tess.timeline)


async def test_malformed_frames_get_an_error_and_the_connection_goes_on(embedded: Running) -> None:
    async with (
        ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann,
        ydoc(embedded.base, "r1", token("r1", "teacher", "Tess")) as tess,
    ):
        for frame, words in [
            (b"", "truncated"),
            (b"\x07", "unknown message type"),
            (b"\x00\x09\x00", "unknown sync message type"),
            (b"\x00\x02\x50\x01\x02", "truncated sync payload"),
            (b"\x00\x02\x04\xff\xff\xff\xff", "not a Yjs update"),
            (b"\x00\x00\x02\x09\x09", "bad state vector"),
            (b"\x01\x05\x01\x01\x01\x01\x7b", "not JSON"),
            (yjs_wire.awareness([(1, 1, "[" * 50_000)]), "not JSON"),
            (b"\xff" * 12, "too long"),
            (b"\x00\x02" + b"\x80\x80\x60" + b"\x00" * (1536 * 1024), "frame_too_large"),
        ]:
            await ann.send_raw(frame)
            reason = await asyncio.wait_for(ann.denied.get(), TIMEOUT)
            assert words in reason, (frame, reason)
        ann.plan += "still here"
        await ann.flush()
        await tess.until(lambda: str(tess.plan) == "still here")
        # Past the transport's cap the connection is closed (1009); the other client goes on.
        await ann.send_raw(b"\x00" * (3 * 1024 * 1024))
        await asyncio.sleep(0.2)
        assert ann.ws.close_code == 1009
        tess.plan += "!"
        await tess.flush()
        async with ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as again:
            await again.until(lambda: str(again.plan) == "still here!")


# An update that makes Yrs panic (an unwrap of None) when applied on top of BASE; found by
# tests/test_fuzz.py. pyo3 raises it as a BaseException the server must still turn into a refusal.
PANIC_BASE = (
    b"\x01\x01\xe9\xc3\x80\xae\xf1\xa3\xce\n\x00\x04\x01\x04plan\x14Try think-pair-share\x00"
)
PANIC_UPDATE = (
    b"\x01\x01\xe9\xc3\x80\xae\xf1\xa3\xce\n\xbb\xa8\xe9\xc3\x809\xf1\xa3\xce\n\x15\x01|\x80"
    b"\x00\x00\x00\x01\xe9\xc3\x80\xae\xf1\xa3\xce\n\x01\x15\x01"
)


async def test_an_update_that_makes_the_crdt_library_panic_is_refused(embedded: Running) -> None:
    async with (
        ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann,
        ydoc(embedded.base, "r1", token("r1", "teacher", "Tess")) as tess,
    ):
        await ann.send_raw(yjs_wire.sync_update(PANIC_BASE))
        await tess.until(lambda: str(tess.plan) == "Try think-pair-share")
        async with ydoc(embedded.base, "r1", token("r1", "coach", "Mallory")) as mallory:
            await mallory.send_raw(yjs_wire.sync_update(PANIC_UPDATE))
            reason = await asyncio.wait_for(mallory.denied.get(), TIMEOUT)
            assert "not a Yjs update" in reason and "CRDT library" in reason
        # The room's replica was rebuilt from what it had committed: editing goes on.
        tess.plan += "!"
        await tess.flush()
        async with ydoc(embedded.base, "r1", token("r1", "observer", "Obi")) as obi:
            await obi.until(lambda: str(obi.plan) == "Try think-pair-share!")


async def test_awareness_is_relayed_and_cleared_on_leave(embedded: Running) -> None:
    async with ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann:
        async with ydoc(embedded.base, "r1", token("r1", "observer", "Obi")) as obi:
            await obi.send_awareness(4242, 1, {"user": {"name": "Obi"}, "cursor": 3})
            await ann.until(
                lambda: ann.awareness.get(4242, {}) is not None and 4242 in ann.awareness
            )
            assert ann.awareness[4242] == {"user": {"name": "Obi"}, "cursor": 3}
        await ann.until(lambda: ann.awareness.get(4242, "missing") is None)


async def test_awareness_comes_back_to_a_lone_client(embedded: Running) -> None:
    """As from the stock y-websocket server: it is all a client alone in a room hears, and
    y-websocket reconnects after 30 s of silence."""
    async with ydoc(embedded.base, "r1", token("r1", "coach", "Ann")) as ann:
        await ann.send_awareness(77, 1, {"user": {"name": "Ann"}})
        await ann.until(lambda: ann.awareness.get(77) == {"user": {"name": "Ann"}})


async def test_refused_without_view_or_token(embedded: Running) -> None:
    import websockets

    for tok, code in [(token("r1", "camera", "Cam"), 4403), ("nope", 4002), (token("r2"), 4004)]:
        url = embedded.base.replace("http", "ws") + f"/yjs/r1?token={tok}"
        async with websockets.connect(url) as ws:
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == code


async def test_the_document_survives_a_restart_and_compaction(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.sync.sqlite_store import SqliteStore
    from server.sync.store import RoomRecord

    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id="r9", title="Nine", created=0.0, framework="questioning"))
    await store.close()
    settings = make_settings(tmp_path, doc_compact_after=10)
    async with (
        serve_in_process(settings) as server,
        ydoc(server.base, "r9", token("r9", "coach", "Ann")) as ann,
    ):
        assert ann.meta["framework"]["id"] == "questioning"
        for i in range(60):
            ann.plan += f"line {i}\n"
            await ann.flush()
            await asyncio.sleep(0.005)  # separate log entries, not one merged batch
        ann.timeline["n1"] = note(1.0)
        await ann.flush()
        expected = str(ann.plan)
        await asyncio.sleep(0.3)
    async with (
        serve_in_process(settings) as server,
        ydoc(server.base, "r9", token("r9", "teacher", "Tess")) as tess,
    ):
        assert str(tess.plan) == expected
        assert "n1" in tess.timeline
        assert tess.meta["title"] == "Nine"
    from server.sync.sqlite_doclog import SqliteDocLog

    doclog = SqliteDocLog(tmp_path / "documents.sqlite3")
    try:
        loaded = await doclog.load("r9")
        # Compacted past 10 entries, give or take the per-room 25 % (server/session/documents.py).
        assert loaded.snapshot is not None and len(loaded.entries) <= 13
    finally:
        await doclog.close()
