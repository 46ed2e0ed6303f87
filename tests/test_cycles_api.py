"""Coaching cycles over HTTP with a real server (docs/cycles.md): a coach proposes, the teacher
accepts and owns it; sessions are rooms bound to it; scores fit the rubric or are refused with
nothing stored; progress shows each scorer's levels side by side; nobody else sees it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Map
from redis import Redis as SyncRedis

from tests.support import ADMIN_KEY, TIMEOUT, token
from tests.test_people_api import Env, closing, serve_people
from tests.video_support import clip, upload
from tests.yclient import ydoc

CYCLES_DB = 9  # no other test uses it


@pytest.fixture(params=["embedded", "redis"])
async def env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    """Every rule over either backend: the embedded one, and Redis (the contract pattern). Over
    Redis in a database of its own, emptied first: people are known by their email across the
    whole store."""
    url = None
    if request.param == "redis":
        url = request.getfixturevalue("redis").url + f"/{CYCLES_DB}"
        with SyncRedis.from_url(url) as client:
            client.flushdb()
    async with serve_people(tmp_path, monkeypatch, url) as running:
        yield running


async def test_a_cycle_from_proposal_to_close(
    env: Env, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    await env.person("Cora Coach", "cora@ashby.sch.uk", "ashby-primary", "coach")
    await env.person("Tia Teacher", "tia@ashby.sch.uk", "ashby-primary")
    await env.person("Lee Leader", "lee@ashby.sch.uk", "ashby-primary", "leader")
    cora = await env.signed_in("cora@ashby.sch.uk", capsys)
    tia = await env.signed_in("tia@ashby.sch.uk", capsys)
    lee = await env.signed_in("lee@ashby.sch.uk", capsys)
    async with closing(cora, tia, lee):
        tia_id = (await tia.get("/api/me")).json()["id"]
        cora_id = (await cora.get("/api/me")).json()["id"]
        proposed = await cora.post(
            "/api/cycles",
            json={
                "teacher": tia_id,
                "focus": "My questions only reach the same five pupils",
                "framework": "questioning",
                "success_criteria": ["Ten pupils answer in a lesson"],
            },
        )
        assert proposed.status_code == 201, proposed.text
        cycle = proposed.json()
        assert cycle["status"] == "proposed" and cycle["coaches"] == [cora_id]
        cid = cycle["id"]
        assert (await cora.post(f"/api/cycles/{cid}/accept")).status_code == 403
        assert (await tia.post(f"/api/cycles/{cid}/accept")).json()["status"] == "active"
        # A teacher may not propose to others; nobody sees a cycle they are not in.
        refused = await tia.post(
            "/api/cycles", json={"teacher": cora_id, "focus": "x", "framework": "questioning"}
        )
        assert refused.status_code == 403
        assert (await lee.get(f"/api/cycles/{cid}")).status_code == 404
        assert (await lee.get("/api/cycles")).json()["cycles"] == []
        assert [c["id"] for c in (await tia.get("/api/cycles")).json()["cycles"]] == [cid]

        video = await upload(tia, clip(tmp_path, "lesson.mp4", seconds=1.0), "Lesson one")
        made = await cora.post(
            f"/api/cycles/{cid}/sessions", json={"kind": "review", "video": video}
        )
        assert made.status_code == 201, made.text
        room = made.json()["room"]
        assert made.json()["cycle"]["lessons"] == [video]
        rooms = (await tia.get("/api/me/rooms")).json()["rooms"]
        assert [(r["id"], r["role"]) for r in rooms] == [(room, "teacher")]
        record = (
            await tia.get(f"/api/rooms/{room}", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        ).json()
        assert record["framework"] == "questioning" and record["video"] == video

        good = {"video": video, "criterion": "question-reach", "level": 3}
        assert (await cora.put(f"/api/cycles/{cid}/scores", json=good)).status_code == 200
        mine = {**good, "level": 2}
        assert (await tia.put(f"/api/cycles/{cid}/scores", json=mine)).status_code == 200
        for bad, needle in (
            ({**good, "level": 7}, "not one of"),
            ({**good, "criterion": "charisma"}, "not one of question-reach"),
            ({**good, "video": "v-elsewhere"}, "not a lesson of this cycle"),
            ({**good, "evidence": ["n-of-another-cycle"]}, "not a note of this lesson"),
        ):
            answer = await cora.put(f"/api/cycles/{cid}/scores", json=bad)
            assert answer.status_code == 400 and needle in answer.text, answer.text
        assert (await lee.put(f"/api/cycles/{cid}/scores", json=good)).status_code == 404

        figures = (await tia.get(f"/api/cycles/{cid}/progress")).json()
        lesson = figures["lessons"][0]
        assert lesson["video"] == video
        # The teacher's self-score and the coach's, side by side, never merged.
        assert lesson["rubric"] == {
            cora_id: {"question-reach": 3},
            tia_id: {"question-reach": 2},
        }
        assert lesson["tags"]["open-question"]["count"] == 0
        assert "open-to-closed" in lesson["ratios"]

        closed = await tia.post(f"/api/cycles/{cid}/close")
        assert closed.json()["status"] == "closed"
        late = await cora.post(f"/api/cycles/{cid}/sessions", json={"kind": "planning"})
        assert late.status_code == 403
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        reads = (await tia.get("/api/audit", params={"action": "cycle.read"}, headers=admin)).json()
        assert reads["events"] and all(e["actor"]["sub"] == cora_id for e in reads["events"])

        # The teacher's progress across her cycles: hers, her coach's, the admin's; not Lee's.
        lee_id = (await lee.get("/api/me")).json()["id"]
        for client, headers in ((tia, {}), (cora, {}), (lee, admin)):
            spans = await client.get(f"/api/people/{tia_id}/progress", headers=headers)
            assert spans.status_code == 200, spans.text
            assert [c["cycle"] for c in spans.json()["cycles"]] == [cid]
        assert (await lee.get(f"/api/people/{tia_id}/progress")).status_code == 404
        # The closed cycle's report, shared by the teacher with a named person: they read the
        # report, never the cycle's work.
        assert (
            await cora.post(f"/api/cycles/{cid}/share", json={"person": lee_id})
        ).status_code == 403
        shared = await tia.post(f"/api/cycles/{cid}/share", json={"person": lee_id})
        assert shared.json()["shared_with"] == [lee_id]
        exported = await lee.get(f"/api/cycles/{cid}/export.json")
        assert exported.status_code == 200
        assert exported.json()["progress"]["lessons"][0]["video"] == video
        assert len(exported.json()["scores"]) == 2
        assert (await lee.get(f"/api/cycles/{cid}")).status_code == 403


def action(text: str, author: str, status: str = "planned") -> Map[Any]:
    return Map(
        {
            "text": text,
            "author": author,
            "status": status,
            "created": 1.0,
            "evidence": Array([]),
        }
    )


async def test_action_steps_are_co_edited_and_carried_forward(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    await env.person("Cora Coach", "cora@ashby.sch.uk", "ashby-primary", "coach")
    await env.person("Tia Teacher", "tia@ashby.sch.uk", "ashby-primary")
    cora = await env.signed_in("cora@ashby.sch.uk", capsys)
    tia = await env.signed_in("tia@ashby.sch.uk", capsys)
    async with closing(cora, tia):
        cora_id = (await cora.get("/api/me")).json()["id"]
        made = await tia.post(
            "/api/cycles",
            json={"focus": "Wait time", "framework": "questioning", "coaches": [cora_id]},
        )
        cid = made.json()["id"]
        first = (await tia.post(f"/api/cycles/{cid}/sessions", json={"kind": "planning"})).json()
        room = first["room"]
        tia_token = (await tia.post(f"/api/rooms/{room}/token")).json()["token"]
        cora_token = (await cora.post(f"/api/rooms/{room}/token")).json()["token"]
        tia_id = (await tia.get("/api/me")).json()["id"]
        async with (
            ydoc(env.base, room, tia_token) as teacher,
            ydoc(env.base, room, cora_token) as coach,
        ):
            teacher.doc.get("actions", type=Map)["a1"] = action(
                "Count to five after asking", tia_id
            )
            await teacher.flush()
            await coach.until(lambda: "a1" in coach.doc.get("actions", type=Map))
        # Refused, with nothing stored: an observer, a forged author, a status not in the list.
        for tok, make, words in (
            (
                token(room, "observer", "Olu", org="ashby-primary"),
                lambda m: m.__setitem__("a2", action("x", "o")),
                "may not change the action",
            ),
            (cora_token, lambda m: m.__setitem__("a3", action("x", tia_id)), "author must be you"),
            (
                cora_token,
                lambda m: m.__setitem__("a4", action("x", cora_id, "done")),
                "status must be one of",
            ),
        ):
            async with ydoc(env.base, room, tok) as client:
                make(client.doc.get("actions", type=Map))
                await client.flush()
                reason = await asyncio.wait_for(client.denied.get(), TIMEOUT)
                assert words in reason, reason
        # The next session opens with what they agreed to try; its status moves on there.
        second = (await cora.post(f"/api/cycles/{cid}/sessions", json={"kind": "review"})).json()
        next_room = second["room"]
        next_token = (await tia.post(f"/api/rooms/{next_room}/token")).json()["token"]
        async with ydoc(env.base, next_room, next_token) as teacher:
            actions = teacher.doc.get("actions", type=Map)
            assert set(actions.keys()) == {"a1"}
            actions["a1"]["status"] = "worked"
            await teacher.flush()
            await asyncio.sleep(0.3)
        cycle = (await cora.get(f"/api/cycles/{cid}")).json()
        assert [(a["id"], a["status"]) for a in cycle["actions"]] == [("a1", "worked")]
        figures = (await tia.get(f"/api/cycles/{cid}/progress")).json()
        assert figures["actions"]["worked"] == 1
        # A change in the earlier session after the next one began: the newest version wins
        # (its `updated`), and a stale one (no newer `updated`) does not.
        async with ydoc(env.base, room, tia_token) as teacher:
            step = teacher.doc.get("actions", type=Map)["a1"]
            step["status"] = "dropped"
            await teacher.flush()
            await asyncio.sleep(0.3)
            assert [
                a["status"] for a in (await cora.get(f"/api/cycles/{cid}")).json()["actions"]
            ] == ["worked"]
            with teacher.doc.transaction():
                step["status"] = "adapt"
                step["updated"] = time.time()
            await teacher.flush()
            await asyncio.sleep(0.3)
        cycle = (await cora.get(f"/api/cycles/{cid}")).json()
        assert [(a["id"], a["status"]) for a in cycle["actions"]] == [("a1", "adapt")]
        third = (await tia.post(f"/api/cycles/{cid}/sessions", json={"kind": "planning"})).json()
        third_token = (await tia.post(f"/api/rooms/{third['room']}/token")).json()["token"]
        async with ydoc(env.base, third["room"], third_token) as teacher:
            assert teacher.doc.get("actions", type=Map)["a1"]["status"] == "adapt"
