"""Clips, groups and the trust library over HTTP with a real server (docs/groups.md), over the
embedded and the Redis backends: a teacher cuts a clip of her lesson carrying its notes, shares
it with a group of two schools of her trust, whose members discuss it; a removed member and a
withdrawn share are refused at once; the clip goes to the library once consent is recorded and
is found by words and tags by her trust only; deleting the video takes every part of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pycrdt import Array, Map, Text
from redis import Redis as SyncRedis

from tests.support import ADMIN_KEY, SECRET
from tests.test_people_api import Env, closing, serve_people
from tests.video_support import clip, tus_create, tus_patch, wait_for
from tests.yclient import ydoc

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CLIPS_DB = 10  # no other test uses it


@pytest.fixture(params=["embedded", "redis"])
async def env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    url = None
    if request.param == "redis":
        url = request.getfixturevalue("redis").url + f"/{CLIPS_DB}"
        with SyncRedis.from_url(url) as client:
            client.flushdb()
    async with serve_people(tmp_path, monkeypatch, url, clip_max_seconds=3.0) as running:
        yield running


@dataclass
class Trust:
    """Tia (teacher, Ashby), Cora (coach, Ashby), Bea (teacher, Brook: the same trust), Sam
    (teacher, Carlton: another trust), signed in; Tia's lesson, reviewed with two notes."""

    tia: httpx.AsyncClient
    cora: httpx.AsyncClient
    bea: httpx.AsyncClient
    sam: httpx.AsyncClient
    ids: dict[str, str]
    video: str
    room: str


async def upload(client: httpx.AsyncClient, data: bytes, title: str, consent: str) -> str:
    url = await tus_create(client, len(data), filename=f"{title}.mp4", title=title, consent=consent)
    answer = await tus_patch(client, url, 0, data)
    assert answer.status_code == 204, answer.text
    return url.split("/")[3]


def note(
    doc: Any, key: str, start: float, text: str, tags: list[str], author: str, video: str
) -> None:
    with doc.transaction():
        doc.get("timeline", type=Map)[key] = Map(
            {
                "start": start,
                "text": Text(text),
                "tags": Array(tags),
                "author": author,
                "authorName": "Tia Teacher",
                "created": time.time(),
                "replies": Array([]),
                "video": video,
            }
        )


@pytest.fixture
async def trust(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[Trust]:
    await env.person("Tia Teacher", "tia@ashby.sch.uk", "ashby-primary")
    await env.person("Cora Coach", "cora@ashby.sch.uk", "ashby-primary", "coach")
    await env.person("Bea Brook", "bea@brook.sch.uk", "brook-academy")
    await env.person("Sam South", "sam@carlton.sch.uk", "carlton-high")
    people = {
        name: await env.signed_in(email, capsys)
        for name, email in (
            ("tia", "tia@ashby.sch.uk"),
            ("cora", "cora@ashby.sch.uk"),
            ("bea", "bea@brook.sch.uk"),
            ("sam", "sam@carlton.sch.uk"),
        )
    }
    async with closing(*people.values()):
        ids = {name: (await c.get("/api/me")).json()["id"] for name, c in people.items()}
        tia = people["tia"]
        data = clip(tmp_path, "lesson.mp4", seconds=6.0, width=320, height=180)
        video = await upload(tia, data, "Fractions", "not_obtained")
        assert (await wait_for(tia, video))["status"] == "ready"
        cycle = await tia.post(
            "/api/cycles",
            json={"focus": "Questions", "framework": "questioning", "coaches": [ids["cora"]]},
        )
        made = await tia.post(
            f"/api/cycles/{cycle.json()['id']}/sessions", json={"kind": "review", "video": video}
        )
        room = made.json()["room"]
        token = (await tia.post(f"/api/rooms/{room}/token")).json()["token"]
        async with ydoc(env.base, room, token) as writer:
            note(
                writer.doc,
                "n-open",
                1.2,
                "Why is a half bigger?",
                ["open-question"],
                ids["tia"],
                video,
            )
            note(writer.doc, "n-late", 5.0, "Is it a half?", ["closed-question"], ids["tia"], video)
            await writer.flush()
            await asyncio.sleep(0.3)
        yield Trust(people["tia"], people["cora"], people["bea"], people["sam"], ids, video, room)


async def make_clip(t: Trust, **change: Any) -> httpx.Response:
    body = {
        "video": t.video,
        "start": 1.0,
        "end": 3.5,
        "title": "Half or third",
        "description": "Open questions reach the back row",
        "room": t.room,
        "notes": ["n-open"],
        **change,
    }
    return await t.tia.post("/api/clips", json=body)


async def test_a_clip_is_cut_from_the_owners_video_and_carries_its_notes(trust: Trust) -> None:
    t = trust
    # Refused, naming the field, with nothing stored.
    for change, status, needle in (
        ({"end": 9.0}, 400, "past the video's end"),
        ({"start": 0.0, "end": 3.5}, 400, "at most 3 s"),
        ({"start": 2.0, "end": 1.0}, 400, "start must be"),
        ({"notes": ["n-late"]}, 400, "notes: note 'n-late' at 5 s is outside the clip"),
        ({"notes": ["n-nowhere"]}, 400, "notes:"),
        ({"room": None}, 400, "room:"),
        ({"title": ""}, 400, "title"),
    ):
        answer = await make_clip(t, **change)
        assert answer.status_code == status and needle in answer.text, (change, answer.text)
    body = {"video": t.video, "start": 1.0, "end": 2.0, "title": "Mine now"}
    assert (await t.cora.post("/api/clips", json=body)).status_code == 404  # not her video
    assert (await t.tia.get("/api/clips")).json()["clips"] == []

    made = await make_clip(t)
    assert made.status_code == 201, made.text
    cut = made.json()
    assert cut["duration"] == 2.5 and cut["owner_name"] == "Tia Teacher"
    assert cut["framework"] == "questioning" and cut["tags"] == {"open-question": 1}
    (carried,) = cut["notes"]
    assert carried["id"] == "n-open" and abs(carried["start"] - 0.2) < 1e-6
    assert carried["author"] == t.ids["tia"] and carried["text"] == "Why is a half bigger?"
    media = await wait_for(t.tia, cut["media"])
    assert media["status"] == "ready", media
    assert abs(media["duration"] - 2.5) < 0.1
    # The media is listed with its clip, not among her lessons; a clip is not cut again.
    listed = [v["id"] for v in (await t.tia.get("/api/videos")).json()["videos"]]
    assert listed == [t.video]
    again = await t.tia.post(
        "/api/clips", json={"video": cut["media"], "start": 0, "end": 1, "title": "x"}
    )
    assert again.status_code == 400 and "video:" in again.text
    assert [c["id"] for c in (await t.tia.get("/api/clips")).json()["clips"]] == [cut["id"]]
    # Nobody else sees it yet.
    for other in (t.cora, t.bea, t.sam):
        assert (await other.get(f"/api/clips/{cut['id']}")).status_code == 404


async def test_a_group_of_one_trust_discusses_a_shared_clip(env: Env, trust: Trust) -> None:
    t = trust
    cut = (await make_clip(t)).json()
    # Groups: a coach starts one of her trust's people; never across trusts; not a teacher.
    refused = await t.cora.post(
        "/api/groups", json={"name": "X", "members": [t.ids["tia"], t.ids["sam"]]}
    )
    assert refused.status_code == 400 and "another trust" in refused.text
    by_teacher = await t.tia.post("/api/groups", json={"name": "X", "members": []})
    assert by_teacher.status_code == 403
    made = await t.cora.post(
        "/api/groups",
        json={"name": "Questioning club", "members": [t.ids["tia"], t.ids["bea"]]},
    )
    assert made.status_code == 201, made.text
    group = made.json()
    assert [p["id"] for p in group["facilitators"]] == [t.ids["cora"]]
    assert {p["org"] for p in group["members"]} == {"ashby-primary", "brook-academy"}
    assert (await t.sam.get(f"/api/groups/{group['id']}")).status_code == 404

    # Only the owner shares, and only with a group she is in.
    assert (
        await t.cora.post(f"/api/clips/{cut['id']}/shares", json={"group": group["id"]})
    ).status_code == 404
    shared = await t.tia.post(f"/api/clips/{cut['id']}/shares", json={"group": group["id"]})
    assert shared.status_code == 201, shared.text
    room = shared.json()["room"]
    listed = (await t.bea.get("/api/groups")).json()["groups"]
    assert [c["clip"] for c in listed[0]["clips"]] == [cut["id"]]

    # Bea, of another school, watches through the group and comments; the view is on record.
    seen = (await t.bea.get(f"/api/clips/{cut['id']}")).json()
    assert seen["title"] == "Half or third" and "shares" not in seen
    assert (await t.sam.get(f"/api/clips/{cut['id']}")).status_code == 404
    watch = await t.bea.post(f"/api/clips/{cut['id']}/watch", json={"via": group["id"]})
    assert watch.json() == {"room": room}
    minted = await t.bea.post(f"/api/rooms/{room}/token")
    assert minted.status_code == 200 and minted.json()["role"] == "teacher"
    bea_token = minted.json()["token"]
    async with ydoc(env.base, room, bea_token) as bea:
        timeline = bea.doc.get("timeline", type=Map)
        assert set(timeline.keys()) == {"n-open"}  # the clip's notes, on its own time
        assert abs(timeline["n-open"]["start"] - 0.2) < 1e-6
        note(
            bea.doc,
            "n-bea",
            0.5,
            "Try names on sticks",
            ["open-question"],
            t.ids["bea"],
            cut["media"],
        )
        await bea.flush()
        await asyncio.sleep(0.3)
        assert bea.denied.empty()
    views = (await t.tia.get("/api/audit", params={"action": "clip.view"}, headers=ADMIN)).json()
    assert [(e["actor"]["sub"], e["detail"]["via"]) for e in views["events"]] == [
        (t.ids["bea"], group["id"])
    ]

    # A group session: the facilitator controls, members watch and comment.
    session = await t.cora.post(f"/api/groups/{group['id']}/sessions", json={"clip": cut["id"]})
    assert session.status_code == 201, session.text
    live_room = session.json()["room"]
    listed_sessions = (await t.bea.get(f"/api/groups/{group['id']}")).json()["sessions"]
    assert [g["room"] for g in listed_sessions] == [live_room]  # members find it here
    assert (
        await t.bea.post(f"/api/groups/{group['id']}/sessions", json={"clip": cut["id"]})
    ).status_code == 403
    member = (await t.bea.post(f"/api/rooms/{live_room}/token")).json()
    claims = jwt.decode(member["token"], SECRET, algorithms=["HS256"])
    assert member["role"] == "observer" and claims["grants"] == {"annotate": True}
    assert (await t.cora.post(f"/api/rooms/{live_room}/token")).json()["role"] == "coach"

    # Bea is taken out: refused from that moment, her earlier token too, on every route.
    gone = await t.cora.delete(f"/api/groups/{group['id']}/members/{t.ids['bea']}")
    assert gone.status_code == 204
    assert (await t.bea.post(f"/api/rooms/{room}/token")).status_code == 404
    old = await t.bea.get(f"/api/rooms/{room}/export.json", params={"token": bea_token})
    assert old.status_code == 403 and "no longer" in old.text
    assert (await t.bea.get(f"/api/clips/{cut['id']}")).status_code == 404

    # The share withdrawn: its rooms refuse the group's members.
    cora_token = (await t.cora.post(f"/api/rooms/{room}/token")).json()["token"]
    withdrawn = await t.tia.delete(f"/api/clips/{cut['id']}/shares/{group['id']}")
    assert withdrawn.status_code == 204
    after = await t.cora.get(f"/api/rooms/{room}/export.json", params={"token": cora_token})
    assert after.status_code == 403
    assert (await t.cora.post(f"/api/rooms/{live_room}/token")).status_code == 404
    assert (await t.cora.get(f"/api/clips/{cut['id']}")).status_code == 404


async def test_the_trust_library_and_privacy(trust: Trust) -> None:
    t = trust
    cut = (await make_clip(t)).json()
    # Not without consent.
    refused = await t.tia.post("/api/library", json={"clip": cut["id"], "summary": "Names"})
    assert refused.status_code == 403 and "consent_missing" in refused.text
    assert (await t.cora.post("/api/library", json={"clip": cut["id"]})).status_code == 404
    changed = await t.tia.patch(
        f"/api/videos/{t.video}", json={"consent": "obtained"}, headers=ADMIN
    )
    assert changed.status_code == 200
    media = (await t.tia.get(f"/api/videos/{cut['media']}")).json()
    assert media["consent"] == "obtained"  # a clip follows its video's consent
    published = await t.tia.post(
        "/api/library", json={"clip": cut["id"], "summary": "Names drawn at random"}
    )
    assert published.status_code == 201, published.text

    async def found(client: httpx.AsyncClient, **params: Any) -> list[str]:
        answer = await client.get("/api/library", params=params)
        assert answer.status_code == 200, answer.text
        return [e["clip"] for e in answer.json()["entries"]]

    assert await found(t.bea) == [cut["id"]]  # another school of the trust
    assert await found(t.sam) == []  # another trust
    assert await found(t.cora, q="half bigg") == [cut["id"]]  # note text, a prefix
    assert await found(t.cora, q="random") == [cut["id"]]  # the summary
    assert await found(t.cora, q="giraffe") == []
    assert await found(t.cora, tag="open-question") == [cut["id"]]
    assert await found(t.cora, tag="closed-question") == []
    assert await found(t.cora, framework="questioning") == [cut["id"]]
    for syntax in ('"', "NEAR(a b)", "title:half", "half OR x", "*", "-half", "^"):
        assert (await t.cora.get("/api/library", params={"q": syntax})).status_code == 200
    huge = await t.cora.get("/api/library", params={"q": "x" * 201})
    assert huge.status_code == 400 and "q" in huge.text
    entry = (await t.bea.get("/api/library")).json()["entries"][0]
    assert entry["tags"] == {"open-question": 1} and entry["duration"] == 2.5
    # Anyone of the trust watches it in a room of their own.
    watch = await t.bea.post(f"/api/clips/{cut['id']}/watch", json={})
    assert watch.status_code == 200
    assert (await t.bea.post(f"/api/rooms/{watch.json()['room']}/token")).status_code == 200

    # Unpublished: gone at once, and her viewing room refuses her.
    assert (await t.tia.delete(f"/api/library/{cut['id']}")).status_code == 204
    assert await found(t.bea) == []
    assert (await t.bea.post(f"/api/rooms/{watch.json()['room']}/token")).status_code == 404

    # Consent withdrawn from the video: the clip's media with it.
    await t.tia.patch(f"/api/videos/{t.video}", json={"consent": "not_obtained"}, headers=ADMIN)
    assert (await t.tia.get(f"/api/videos/{cut['media']}")).json()["consent"] == "not_obtained"

    # Deleting the video deletes its clips, their media, their library entries.
    assert (await t.tia.delete(f"/api/videos/{t.video}")).status_code == 204
    assert (await t.tia.get(f"/api/clips/{cut['id']}")).status_code == 404
    assert (await t.tia.get(f"/api/videos/{cut['media']}")).status_code == 404
    assert (await t.tia.get("/api/clips")).json()["clips"] == []
