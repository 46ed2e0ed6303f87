"""Coaching cycles over HTTP with a real server (docs/cycles.md): a coach proposes, the teacher
accepts and owns it; sessions are rooms bound to it; scores fit the rubric or are refused with
nothing stored; progress shows each scorer's levels side by side; nobody else sees it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import ADMIN_KEY
from tests.test_people_api import Env, closing, serve_people
from tests.video_support import clip, upload


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    async with serve_people(tmp_path, monkeypatch) as running:
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
