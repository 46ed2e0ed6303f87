"""Notes belong to their lesson (server/documents/lessons.py): a room can hold several lessons
(the upload, the live recording, another chosen later); a note keeps the `video` it was made on
whatever the room shows next, exports name each note's own video, and rooms from before are
migrated once."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pycrdt import Array, Doc, Map, Text

from server.documents.lessons import Lesson, bindings, lesson_at, read_lessons
from server.documents.rules import declare_roots
from server.sync.redis_store import RedisStore
from server.sync.sqlite_doclog import SqliteDocLog
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord, VideoRecord
from tests.support import (
    ADMIN_KEY,
    TIMEOUT,
    RedisServer,
    Running,
    WorkerProcess,
    make_settings,
    serve_in_process,
    token,
)
from tests.test_multiworker import create_room, workers  # noqa: F401  (fixture)
from tests.yclient import ydoc

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
UPLOAD, RECORDING, OTHER = "v0000000000a1", "v0000000000b2", "v0000000000c3"

# ---- the pure rules -------------------------------------------------------------------------


HISTORY = [Lesson(UPLOAD, 100.0), Lesson(RECORDING, 200.0, "recording")]


@pytest.mark.parametrize(
    ("moment", "lesson"),
    [
        (50.0, UPLOAD),  # before any record of a lesson: the room's first
        (100.0, UPLOAD),
        (199.9, UPLOAD),
        (200.0, RECORDING),  # a live note: the recording started when the lesson went live
        (1e9, RECORDING),
    ],
)
def test_a_note_goes_to_the_lesson_shown_when_it_was_written(moment: float, lesson: str) -> None:
    assert lesson_at(HISTORY, moment) == lesson
    assert lesson_at(list(reversed(HISTORY)), moment) == lesson


def test_a_room_that_never_had_a_lesson_binds_nothing() -> None:
    assert lesson_at([], 10.0) is None
    assert bindings([("n1", 10.0)], []) == {}
    assert bindings([("n1", 10.0), ("n2", 250.0)], HISTORY) == {"n1": UPLOAD, "n2": RECORDING}


def test_the_lessons_root_is_read_defensively() -> None:
    doc: Doc[Any] = Doc()
    lessons = doc.get("lessons", type=Map)
    lessons[RECORDING] = {"added": 200.0, "kind": "recording"}
    lessons[UPLOAD] = {"added": 100, "kind": "upload"}
    lessons["bad1"] = {"added": "yesterday"}
    lessons["bad2"] = {"added": 1.0, "kind": "film"}
    lessons["bad3"] = "not a map"
    assert read_lessons(lessons) == HISTORY


# ---- a real server ---------------------------------------------------------------------------


# Within retention (records from 1970 would be purged at once), and before the test runs.
NOW = time.time() - 10_000


def video(video_id: str, created: float, room: str | None = None) -> VideoRecord:
    created += NOW
    return VideoRecord(
        id=video_id,
        title=video_id,
        created=created,
        owner="t1",
        status="ready",
        updated=created,
        room=room,
        consent="not_needed",
    )


async def seeded(tmp: Path, *videos: VideoRecord, room_video: str | None = UPLOAD) -> None:
    store = SqliteStore(tmp / "cocoach.sqlite3")
    record = RoomRecord(id="r1", title="Lesson", created=NOW + 100.0, video=room_video)
    await store.create_room(record)
    for record in videos:
        await store.put_video(record)
    await store.close()


def note(doc: Doc[Any], key: str, start: float, author: str, **extra: Any) -> None:
    timeline = doc.get("timeline", type=Map)
    with doc.transaction():
        timeline[key] = Map(
            {
                "start": start,
                "text": Text("a moment"),
                "tags": Array([]),
                "author": author,
                "created": time.time(),
                "replies": Array([]),
                **extra,
            }
        )


async def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def exported(server: Running, query: str = "") -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base, timeout=TIMEOUT) as http:
        answer = await http.get(f"/api/rooms/r1/export.json{query}", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = json.loads(answer.content)
        return body


async def test_a_note_keeps_its_lesson_when_the_room_shows_another(tmp_path: Path) -> None:
    await seeded(tmp_path, video(UPLOAD, 100.0), video(RECORDING, 200.0, room="r1"))
    async with (
        serve_in_process(make_settings(tmp_path)) as server,
        ydoc(server.base, "r1", token("r1", "teacher", "Tess", sub="t1")) as tess,
    ):
        assert tess.meta["video"] == UPLOAD
        note(tess.doc, "n1", 12.0, "t1", video=UPLOAD, authorName="Tess")
        await tess.flush()
        worker = server.server.config.app.state.worker
        await worker.show_lesson("r1", Lesson(RECORDING, time.time(), "recording"))
        await until(lambda: tess.meta.get("video") == RECORDING, "the recording to be shown")
        note(tess.doc, "n2", 3.0, "t1", video=RECORDING)
        await tess.flush()

        body = await exported(server)
        notes = {n["id"]: n for n in body["timeline"]}
        assert notes["n1"]["video"] == UPLOAD and notes["n2"]["video"] == RECORDING
        assert notes["n1"]["author_name"] == "Tess"
        assert [lesson["video"] for lesson in body["lessons"]] == [UPLOAD, RECORDING]
        assert [n["id"] for n in (await exported(server, f"?video={UPLOAD}"))["timeline"]] == ["n1"]
        async with httpx.AsyncClient(base_url=server.base, timeout=TIMEOUT) as http:
            room = (await http.get("/api/rooms/r1", headers=ADMIN)).json()
            assert room["video"] == RECORDING, "the admin page lists what the room shows"
            summary = (await http.get("/api/rooms/r1/summary", headers=ADMIN)).json()
            assert (summary["video"], summary["total"]) == (RECORDING, 1)
            csv = (await http.get("/api/rooms/r1/export.csv", headers=ADMIN)).text
            assert csv.splitlines()[0].endswith(",video,author_name")
            jsonld = (await http.get("/api/rooms/r1/export.jsonld", headers=ADMIN)).json()
            sources = {
                item["target"]["source"].rsplit("/", 1)[1] for item in jsonld["first"]["items"]
            }
            assert sources == {UPLOAD, RECORDING}

            # An admin brings the upload back: on every page, not only in the record.
            answer = await http.patch("/api/rooms/r1", json={"video": UPLOAD}, headers=ADMIN)
            assert answer.status_code == 200 and answer.json()["video"] == UPLOAD
        await until(lambda: tess.meta.get("video") == UPLOAD, "the upload to be shown again")
        assert {n["id"]: n["video"] for n in (await exported(server))["timeline"]} == {
            "n1": UPLOAD,
            "n2": RECORDING,
        }


async def test_a_note_added_without_a_lesson_gets_the_one_on_screen(tmp_path: Path) -> None:
    await seeded(tmp_path, video(UPLOAD, 100.0))
    async with (
        serve_in_process(make_settings(tmp_path)) as server,
        ydoc(server.base, "r1", token("r1", "teacher", "Tess", sub="t1")) as tess,
    ):
        note(tess.doc, "n1", 5.0, "t1")  # an older page, a script: no `video`
        await tess.flush()
        timeline = tess.doc.get("timeline", type=Map)
        await until(lambda: timeline["n1"].get("video") == UPLOAD, "the server to bind it")


async def test_the_lessons_and_the_schema_are_the_servers(tmp_path: Path) -> None:
    await seeded(tmp_path, video(UPLOAD, 100.0))
    async with (
        serve_in_process(make_settings(tmp_path)) as server,
        ydoc(server.base, "r1", token("r1", "coach", "Cora")) as cora,
    ):
        cora.doc.get("lessons", type=Map)[OTHER] = {"added": 1.0, "kind": "upload"}
        await cora.flush()
        reason = await asyncio.wait_for(cora.denied.get(), TIMEOUT)
        assert "kept by the server" in reason


async def test_an_old_rooms_notes_are_migrated_to_their_lessons(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await seeded(tmp_path, video(UPLOAD, 100.0), video(RECORDING, 2000.0, room="r1"))
    old: Doc[Any] = Doc()
    _, timeline, meta = declare_roots(old)
    with old.transaction():
        meta["title"], meta["video"] = "Lesson", RECORDING  # the recording replaced the upload
        for key, at in (("early", 150.0), ("live", 2100.0), ("ancient", 10.0)):
            timeline[key] = Map(
                {
                    "start": 1.0,
                    "text": Text(key),
                    "tags": Array([]),
                    "author": "t1",
                    "created": NOW + at,
                    "replies": Array([]),
                }
            )
    doclog = SqliteDocLog(tmp_path / "documents.sqlite3")
    await doclog.append("r1", "old-worker", old.get_update())
    await doclog.close()

    caplog.set_level(logging.WARNING, "server.session.documents")
    async with serve_in_process(make_settings(tmp_path)) as server:
        body = await exported(server)
        assert {n["id"]: n["video"] for n in body["timeline"]} == {
            "ancient": UPLOAD,  # older than any record: the room's first lesson
            "early": UPLOAD,
            "live": RECORDING,
        }
        assert "migrated 3 of 3 notes" in caplog.text
        async with ydoc(server.base, "r1", token("r1", "observer", "Obi")) as obi:
            assert obi.meta["schema"] == 2
            assert set(obi.doc.get("lessons", type=Map).keys()) == {UPLOAD, RECORDING}


async def test_an_admin_brings_a_lesson_back_on_every_worker(
    workers: list[WorkerProcess],  # noqa: F811
    redis: RedisServer,
) -> None:
    one, two = workers
    room = create_room(one.base)
    client = aioredis.Redis.from_url(redis.url)
    try:
        store = RedisStore(client)
        for record in (video(UPLOAD, 9000.0), video(RECORDING, 9500.0, room=room)):
            await store.put_video(record)
    finally:
        await client.aclose()
    async with (
        ydoc(one.base, room, token(room, "teacher", "Tess")) as tess,
        httpx.AsyncClient(base_url=two.base, timeout=TIMEOUT) as http,
    ):
        for shown in (RECORDING, UPLOAD):
            answer = await http.patch(f"/api/rooms/{room}", json={"video": shown}, headers=ADMIN)
            assert answer.status_code == 200, answer.text
            await until(lambda shown=shown: tess.meta.get("video") == shown, shown)
        lessons = tess.doc.get("lessons", type=Map)
        assert dict(lessons)[RECORDING]["kind"] == "recording"
        assert set(lessons.keys()) == {UPLOAD, RECORDING}
        listed = (await http.get(f"/api/rooms/{room}", headers=ADMIN)).json()
        assert listed["video"] == UPLOAD
