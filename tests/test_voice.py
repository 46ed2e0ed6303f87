"""The room's conversation end to end on one embedded server (docs/conversation.md): real
aiortc peers talk over `POST /rooms/{room}/voice` with generated speech, and what each hears,
what the room shows, and what the talk record keeps are checked against the script."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.kit.video import NumberedVideo
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.live_support import LESSON_HZ, SPEC, start_publisher, start_viewer
from tests.support import TIMEOUT, Client, Running, connect, serve_in_process, token
from tests.test_live import frames
from tests.video_support import library_settings
from tests.voice_support import Microphone, script, start_listener, start_voice, utterance

MEDIA = {
    "media_host_addresses": "127.0.0.1",
    "media_remote_networks": "loopback",
    "home_idle_seconds": 0.5,
}
A_HZ, B_HZ = 2000.0, 2600.0  # the coach's and the teacher's markers


async def make_room(tmp_path: Path, room: str = "r1") -> None:
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id=room, title="Coaching", created=0.0))
    await store.close()


@pytest.fixture
async def voice_server(tmp_path: Path) -> AsyncIterator[Running]:
    await make_room(tmp_path)
    async with serve_in_process(library_settings(tmp_path, **MEDIA)) as running:
        yield running


async def voice_of(
    client: Client, sub: str, check: Any, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """The next `member_updated` of `sub` whose voice passes `check`."""
    deadline = time.monotonic() + timeout
    while True:
        message = await client.expect(
            "member_updated", timeout=max(0.1, deadline - time.monotonic())
        )
        member = message["member"]
        if member["user"] == sub and check(member["voice"]):
            return member


async def talk_of(base: str, tok: str, room: str = "r1") -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await http.get(
            f"{base}/api/rooms/{room}/talk", headers={"authorization": f"Bearer {tok}"}
        )


@pytest.mark.timeout(180)
async def test_two_talkers_hear_each_other_not_themselves_nor_the_lesson(
    voice_server: Running,
) -> None:
    base = voice_server.base
    coach_tok = token("r1", "coach", "Cora", sub="cora")
    teacher_tok = token("r1", "teacher", "Tia", sub="tia")
    # The classroom's live lesson plays its tone in the same room all along; its device wears
    # the teacher's earpiece, which must hear nothing of the conversation.
    classroom, published = await start_publisher(
        base, "r1", token("r1", "camera", "7B"), earpiece=True
    )
    assert published.status_code == 201, published.text
    coach_says, coach_spans = script(
        (0.5, utterance("So how did you feel the lesson went today", "en+f3", A_HZ))
    )
    teacher_says, teacher_spans = script(
        (0.5 + coach_spans[-1][1] + 1.0, utterance("I think it went well", "en+m3", B_HZ))
    )
    async with connect(base, "r1", coach_tok) as page:
        await page.expect("welcome")
        coach, answer = await start_voice(base, "r1", coach_tok, Microphone())
        assert answer.status_code == 201, answer.text
        teacher, answer = await start_voice(base, "r1", teacher_tok, Microphone())
        assert answer.status_code == 201, answer.text
        try:
            await coach.connected(TIMEOUT)
            await teacher.connected(TIMEOUT)
            await voice_of(page, "cora", lambda v: v["mic"])
            # The conversation flows (silence, as DTX sends it) before anyone talks; on a
            # loaded machine the first packet can come a while after "connected".
            for peer in (coach, teacher):
                await peer.heard.until_any(TIMEOUT)
            quiet = time.time()
            await asyncio.sleep(1.0)  # nobody talks yet: all either hears is silence
            begin = time.time()
            for peer in (coach, teacher):
                assert peer.heard.energy(LESSON_HZ, quiet, begin) < 1e-9
            coach.mic.play(coach_says)
            teacher.mic.play(teacher_says)
            speaking = await voice_of(page, "cora", lambda v: v["speaking"])
            assert speaking["voice"]["mic"]
            await asyncio.sleep(teacher_spans[-1][1] + 1.5)
            # While one talks, the other hears them and they hear nothing of themselves: 20 dB.
            for talker, other, spans, hz in (
                (coach, teacher, coach_spans, A_HZ),
                (teacher, coach, teacher_spans, B_HZ),
            ):
                start, end = begin + spans[0][0] + 0.2, begin + spans[0][1]
                own = talker.heard.energy(hz, start, end)
                theirs = other.heard.energy(hz, start, end)
                assert theirs > 100 * own, (hz, theirs, own)
                # The lesson's tone is not in the conversation (the talker's own mix is
                # silence now); the other's holds speech, whose harmonics would cover it.
                lesson = talker.heard.energy(LESSON_HZ, start, end)
                assert theirs > 100 * lesson, (hz, theirs, lesson)
            assert classroom.ear.heard == [], classroom.ear.heard  # nothing reached the earpiece
            # The talk record: one stretch each, about as long as each said.
            deadline = time.monotonic() + TIMEOUT
            while True:
                report = (await talk_of(base, coach_tok)).json()
                if len(report["segments"]) >= 2:
                    break
                assert time.monotonic() < deadline, report
                await asyncio.sleep(0.2)
            members = {m["sub"]: m for m in report["members"]}
            for sub, spans in (("cora", coach_spans), ("tia", teacher_spans)):
                said = sum(end - start for start, end in spans)
                assert abs(members[sub]["talk_s"] - said) < 0.6, (sub, said, members[sub])
                assert members[sub]["turns"] == 1
            assert members["cora"]["role"] == "coach" and members["tia"]["name"] == "Tia"
            first = report["segments"][0]
            assert first["sub"] == "cora"
            assert abs(first["start"] - (begin + coach_spans[0][0])) < 0.5, (first, begin)
            assert first["lesson_at"] is not None  # the live lesson's recording time
            assert report["coach_wait_s"] is None  # the coach did not answer the teacher
            # The exports carry it: the same object in export.json (not an observer's), and
            # a row per stretch in talk.csv.
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                exported = await http.get(
                    f"{base}/api/rooms/r1/export.json",
                    headers={"authorization": f"Bearer {coach_tok}"},
                )
                observer = token("r1", "observer", "Olu")
                watched = await http.get(
                    f"{base}/api/rooms/r1/export.json",
                    headers={"authorization": f"Bearer {observer}"},
                )
                rows = await http.get(
                    f"{base}/api/rooms/r1/talk.csv",
                    headers={"authorization": f"Bearer {teacher_tok}"},
                )
            assert exported.json()["talk"]["segments"] == report["segments"]
            assert watched.status_code == 200 and "talk" not in watched.json()
            lines = rows.content.decode("utf-8-sig").splitlines()
            assert lines[0] == "sub,name,role,start,end,seconds,lesson_at"
            assert len(lines) == 1 + len(report["segments"]) and lines[1].startswith("cora,Cora,")
        finally:
            for peer in (coach, teacher, classroom):
                await peer.close()


async def test_who_may_speak(voice_server: Running) -> None:
    base = voice_server.base
    coach_tok = token("r1", "coach", "Cora", sub="cora")
    olu_tok = token("r1", "observer", "Olu", sub="olu")
    async with connect(base, "r1", coach_tok) as coach_page, connect(base, "r1", olu_tok) as olu:
        await coach_page.expect("welcome")
        welcome = await olu.expect("welcome")
        assert welcome["talk_measured"] is True
        assert welcome["you"]["speak"] is False and "speak" not in welcome["permissions"]
        _, refused = await start_voice(base, "r1", olu_tok)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "may_not_speak"
        # A teacher may not let anyone speak; a coach may.
        await olu.send(type="allow_speak", user="olu", allowed=True)
        error = await olu.expect("error")
        assert error["code"] == "forbidden" and error["ref"] == "allow_speak"
        await coach_page.send(type="allow_speak", user="olu", allowed=True)
        allowed = await olu.expect("member_updated")
        assert allowed["member"]["user"] == "olu" and allowed["member"]["speak"] is True
        member, answer = await start_voice(base, "r1", olu_tok)
        assert answer.status_code == 201, answer.text
        try:
            await member.connected(TIMEOUT)
            await voice_of(coach_page, "olu", lambda v: v["mic"])
            await coach_page.send(type="allow_speak", user="olu", allowed=False)
            # Taken back: the observer's session ends at once.
            await voice_of(coach_page, "olu", lambda v: not v["mic"])
            _, refused = await start_voice(base, "r1", olu_tok)
            assert refused.status_code == 403
        finally:
            await member.close()
        await coach_page.send(type="allow_speak", user="nobody", allowed=True)
        assert (await coach_page.expect("error"))["code"] == "not_found"


async def test_bad_voice_offers_get_clear_errors(voice_server: Running) -> None:
    base = voice_server.base
    coach_tok = token("r1", "coach", "Cora", sub="cora")
    headers = {"content-type": "application/sdp", "authorization": f"Bearer {coach_tok}"}
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        bad = await http.post(f"{base}/rooms/r1/voice", content="hello", headers=headers)
        assert bad.status_code == 400 and "SDP" in bad.json()["error"]["message"]
        huge = await http.post(
            f"{base}/rooms/r1/voice", content="v=0\n" + "a" * 10**6, headers=headers
        )
        assert huge.status_code == 413
        other = token("r2", "coach", "Cora", sub="cora")
        wrong = await http.post(
            f"{base}/rooms/r1/voice",
            content="v=0",
            headers={**headers, "authorization": f"Bearer {other}"},
        )
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "token_wrong_room"
        no_token = await http.post(
            f"{base}/rooms/r1/voice", content="v=0", headers={"content-type": "application/sdp"}
        )
        assert no_token.status_code == 401
        observer = token("r1", "observer", "Olu", sub="olu")
        talk = await http.get(
            f"{base}/api/rooms/r1/talk", headers={"authorization": f"Bearer {observer}"}
        )
        assert talk.status_code == 403
    # The server goes on: a good offer still joins.
    member, answer = await start_voice(base, "r1", coach_tok)
    try:
        assert answer.status_code == 201, answer.text
        assert ";usedtx=1" in answer.text or " usedtx=1" in answer.text  # DTX, please
        await member.connected(TIMEOUT)
    finally:
        await member.close()


async def test_a_second_session_replaces_the_first_and_a_listener_hears(
    voice_server: Running,
) -> None:
    base = voice_server.base
    coach_tok = token("r1", "coach", "Cora", sub="cora")
    first, answer = await start_voice(base, "r1", coach_tok)
    assert answer.status_code == 201
    second, answer = await start_voice(base, "r1", coach_tok, Microphone())
    assert answer.status_code == 201
    listener, heard = await start_listener(base, "r1", token("r1", "observer", "Olu", sub="olu"))
    assert heard.status_code == 201, heard.text
    try:
        await second.connected(TIMEOUT)
        await listener.connected(TIMEOUT)
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            gone = await http.delete(
                f"{base}{first.location}", headers={"authorization": f"Bearer {coach_tok}"}
            )
        assert gone.status_code == 404  # the first session was replaced
        says, spans = script((0.3, utterance("Let us look at the plan", "en+f3", A_HZ)))
        begin = time.time()
        second.mic.play(says)
        await asyncio.sleep(spans[-1][1] + 1.0)
        # The coach's marker, 40 dB under full scale, comes through; before, only silence.
        assert listener.heard.energy(A_HZ, begin) > 0.1
        assert listener.heard.energy(A_HZ, begin - 1.0, begin) < 1e-9
    finally:
        for peer in (first, second, listener):
            await peer.close()


async def test_cameras_are_relayed_up_to_the_rooms_limit(tmp_path: Path) -> None:
    await make_room(tmp_path)
    settings = library_settings(tmp_path, **MEDIA, voice_max_cameras=1)
    async with serve_in_process(settings) as running:
        base = running.base
        coach_tok = token("r1", "coach", "Cora", sub="cora")
        teacher_tok = token("r1", "teacher", "Tia", sub="tia")
        coach, answer = await start_voice(base, "r1", coach_tok, camera=NumberedVideo(SPEC))
        assert answer.status_code == 201, answer.text
        assert "m=video" in answer.text
        teacher, refused = await start_voice(base, "r1", teacher_tok, camera=NumberedVideo(SPEC))
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "cameras_full"
        assert "1 camera" in refused.json()["error"]["message"]
        viewer, watched = await start_viewer(
            base, "r1", teacher_tok, source="camera&member=cora", kinds=("video",)
        )
        assert watched.status_code == 201, watched.text
        nobody, missing = await start_viewer(
            base, "r1", teacher_tok, source="camera&member=tia", kinds=("video",)
        )
        assert missing.status_code == 404
        try:
            await viewer.until(lambda: len(frames(viewer)) >= 10, "the coach's camera")
            assert frames(viewer) == sorted(frames(viewer))  # as encoded, in order
        finally:
            for peer in (coach, teacher, viewer, nobody):
                await peer.close()


async def test_a_room_of_an_unmeasured_organisation_keeps_no_talk(tmp_path: Path) -> None:
    await make_room(tmp_path)
    settings = library_settings(tmp_path, **MEDIA, talk_unmeasured="*")
    async with serve_in_process(settings) as running:
        base = running.base
        coach_tok = token("r1", "coach", "Cora", sub="cora")
        async with connect(base, "r1", coach_tok) as page:
            assert (await page.expect("welcome"))["talk_measured"] is False
            coach, _ = await start_voice(base, "r1", coach_tok, Microphone())
            listener, _ = await start_listener(base, "r1", token("r1", "teacher", "Tia"))
            try:
                await coach.connected(TIMEOUT)
                says, _ = script((0.2, utterance("Shall we begin", "en+f3", A_HZ)))
                coach.mic.play(says)
                # "Who is speaking" still shows: only the record is off.
                await voice_of(page, "cora", lambda v: v["speaking"])
                await voice_of(page, "cora", lambda v: not v["speaking"])
                await asyncio.sleep(0.5)
                report = (await talk_of(base, coach_tok)).json()
                assert report["segments"] == [] and report["total_s"] == 0
            finally:
                await coach.close()
                await listener.close()


async def test_joining_and_leaving_in_a_loop_leaves_nothing_behind(voice_server: Running) -> None:
    base = voice_server.base
    coach_tok = token("r1", "coach", "Cora", sub="cora")
    async with connect(base, "r1", coach_tok) as page:
        await page.expect("welcome")
        for _ in range(8):
            member, answer = await start_voice(base, "r1", coach_tok)
            assert answer.status_code == 201, answer.text
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                left = await http.delete(
                    f"{base}{member.location}", headers={"authorization": f"Bearer {coach_tok}"}
                )
            assert left.status_code == 200
            await member.close()
        # The conversation still works, and nothing was measured of the churn.
        member, answer = await start_voice(base, "r1", coach_tok)
        assert answer.status_code == 201
        try:
            await member.connected(TIMEOUT)
            await voice_of(page, "cora", lambda v: v["mic"])
        finally:
            await member.close()
        report = (await talk_of(base, token("r1", "teacher", "Tia", sub="tia"))).json()
        assert report["segments"] == []
