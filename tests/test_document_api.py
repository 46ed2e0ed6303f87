"""Exports, summary and frameworks over HTTP; rooms unloading and coming back."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import httpx
from pycrdt import Array, Map

from tests.support import ADMIN_KEY, TIMEOUT, Running, make_settings, serve_in_process, token
from tests.yclient import ydoc

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def _room_with_notes(base: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        created = await http.post(
            "/api/rooms", json={"title": "Questioning", "framework": "questioning"}, headers=ADMIN
        )
        assert created.status_code == 201, created.text
        room = str(created.json()["id"])
    async with ydoc(base, room, token(room, "coach", "Ann")) as ann:
        ann.plan += "Try think-pair-share; see 12:03"
        for i, (start, tag) in enumerate([(723.0, "open"), (65.0, "closed"), (70.0, "open")]):
            ann.timeline[f"n{i}"] = Map(
                {
                    "start": start,
                    "text": f"=cmd|' /C calc'!A{i} <b>",
                    "tags": Array([tag]),
                    "author": "user:ann",
                    "created": 1.7e9,
                }
            )
        await ann.flush()
        await asyncio.sleep(0.2)
    return room


async def test_exports_in_every_format(embedded: Running) -> None:
    room = await _room_with_notes(embedded.base)
    teacher = token(room, "teacher", "Tess")
    async with httpx.AsyncClient(base_url=embedded.base) as http:
        as_json = await http.get(
            f"/api/rooms/{room}/export.json", headers={"Authorization": f"Bearer {teacher}"}
        )
        assert as_json.status_code == 200 and as_json.headers["cache-control"] == "no-store"
        body = as_json.json()
        assert body["plan"] == "Try think-pair-share; see 12:03"
        assert [n["start"] for n in body["timeline"]] == [65.0, 70.0, 723.0]
        assert body["framework"]["id"] == "questioning"

        as_csv = await http.get(f"/api/rooms/{room}/export.csv", params={"token": teacher})
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert "attachment" in as_csv.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
        assert len(rows) == 3 and all(r["text"].startswith("'=") for r in rows)

        vtt = (await http.get(f"/api/rooms/{room}/export.vtt", headers=ADMIN)).text
        assert vtt.startswith("WEBVTT") and "00:12:03.000 -->" in vtt and "<b>" not in vtt

        w3c = (await http.get(f"/api/rooms/{room}/export.jsonld", headers=ADMIN)).json()
        assert w3c["type"] == "AnnotationCollection" and w3c["total"] == 3
        selectors = {i["target"]["selector"]["value"] for i in w3c["first"]["items"]}
        assert selectors == {"t=65", "t=70", "t=723"} or selectors == {
            "t=65.0",
            "t=70.0",
            "t=723.0",
        }

        summary = (await http.get(f"/api/rooms/{room}/summary", headers=ADMIN)).json()
        assert summary["tags"] == {"open": 2, "closed": 1}
        assert summary["minutes"][1]["tags"] == {"closed": 1, "open": 1}
        assert len(summary["minutes"]) == 13


async def test_exports_are_private(embedded: Running) -> None:
    room = await _room_with_notes(embedded.base)
    async with httpx.AsyncClient(base_url=embedded.base) as http:
        for params, headers, status in [
            ({}, {}, 401),
            ({"token": token("r1")}, {}, 403),  # a token for another room
            ({"token": token(room, "camera", "Cam")}, {}, 403),
            ({}, {"Authorization": "Bearer wrong"}, 401),
        ]:
            response = await http.get(
                f"/api/rooms/{room}/export.csv", params=params, headers=headers
            )
            assert response.status_code == status, (params, headers, response.text)
            assert "calc" not in response.text
        observer = token(room, "observer", "Obi")
        assert (
            await http.get(f"/api/rooms/{room}/summary", params={"token": observer})
        ).status_code == 200
        unknown = await http.get(f"/api/rooms/{room}/export.pdf", headers=ADMIN)
        assert unknown.status_code == 404 and "csv" in unknown.json()["error"]["message"]
        missing = await http.get("/api/rooms/nope/export.csv", headers=ADMIN)
        assert missing.status_code == 404


async def test_frameworks_and_room_creation(embedded: Running) -> None:
    async with httpx.AsyncClient(base_url=embedded.base) as http:
        listed = (await http.get("/api/frameworks")).json()["frameworks"]
        assert {f["id"] for f in listed} >= {"questioning", "behaviour", "feedback"}
        one = (await http.get("/api/frameworks/questioning")).json()
        assert all(len(t["key"]) == 1 and t["colour"].startswith("#") for t in one["tags"])
        assert (await http.get("/api/frameworks/none")).status_code == 404
        bad = await http.post("/api/rooms", json={"title": "x", "framework": "none"}, headers=ADMIN)
        assert bad.status_code == 404 and "none" in bad.json()["error"]["message"]


async def test_an_idle_room_is_unloaded_and_comes_back(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, doc_idle_seconds=0.2, heartbeat_interval=0.1)
    async with serve_in_process(settings) as server:
        room = await _room_with_notes(server.base)
        worker = server.server.config.app.state.worker  # type: ignore[attr-defined]
        async with asyncio.timeout(TIMEOUT):
            while room in worker.documents.open_rooms:
                await asyncio.sleep(0.05)
        async with ydoc(server.base, room, token(room, "teacher", "Tess")) as tess:
            assert str(tess.plan) == "Try think-pair-share; see 12:03"
            assert len(tess.timeline) == 3
            assert room in worker.documents.open_rooms
        # Reading an export does not load the room.
        async with asyncio.timeout(TIMEOUT):
            while room in worker.documents.open_rooms:
                await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=server.base) as http:
            data = json.loads(
                (await http.get(f"/api/rooms/{room}/export.json", headers=ADMIN)).content
            )
        assert len(data["timeline"]) == 3 and room not in worker.documents.open_rooms
