"""The conversation across two real worker processes on one Redis: a member whose request lands
on the worker that is not the room's home joins the conversation at the home, and when the home
dies the conversation's media ends with it and a member who offers again is back at the new
home, with the talk record kept."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TIMEOUT, RedisServer, WorkerProcess, connect, start_worker, token
from tests.test_live_multiworker import create_room
from tests.test_multiworker import lease_holder
from tests.test_voice import A_HZ, B_HZ, talk_of, voice_of
from tests.test_whep_multiworker import MEDIA_ENV, udp_ports_of
from tests.voice_support import Microphone, script, start_voice, utterance


@pytest.fixture
def workers(tmp_path: Path, redis: RedisServer) -> Iterator[list[WorkerProcess]]:
    started = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}", **MEDIA_ENV) for i in (1, 2)]
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


@pytest.mark.timeout(240)
async def test_the_conversation_across_workers_and_a_home_that_dies(
    workers: list[WorkerProcess], redis: RedisServer
) -> None:
    one, two = workers
    room = await create_room(one.base)
    cal, tia = token(room, "coach", "Cal", sub="cal"), token(room, "teacher", "Tia", sub="tia")
    async with contextlib.AsyncExitStack() as stack:
        # The coach's worker is the home: she is in before the teacher knocks on the other.
        home_page = await stack.enter_async_context(connect(one.base, room, cal))
        await home_page.expect("welcome")
        page = await stack.enter_async_context(connect(two.base, room, tia))
        await page.expect("welcome")
        assert lease_holder(redis, room) == "w1"
        coach, answer = await start_voice(one.base, room, cal, Microphone())
        assert answer.status_code == 201, answer.text
        teacher, answer = await start_voice(two.base, room, tia, Microphone())  # not the home
        assert answer.status_code == 201, answer.text
        ports = {int(p) for p in re.findall(r" udp \d+ \S+ (\d+) typ", answer.text)}
        assert ports and ports <= udp_ports_of(one.pid), "the teacher is not at the home"
        try:
            await teacher.connected(TIMEOUT)
            await coach.connected(TIMEOUT)
            await voice_of(page, "tia", lambda v: v["mic"])
            says, spans = script(
                (0.3, utterance("Can you hear me from the other school", "en+m3", B_HZ))
            )
            begin = time.time()
            teacher.mic.play(says)
            await voice_of(page, "tia", lambda v: v["speaking"])
            await asyncio.sleep(spans[-1][1] + 0.8)
            assert coach.heard.energy(B_HZ, begin) > 0.1  # the coach heard the teacher
            await voice_of(page, "tia", lambda v: not v["speaking"], 2 * TIMEOUT)

            one.crash()  # the home dies, and the conversation's media with it
            await coach.close()
            await teacher.close()
            # The members offer again, as the page does by itself, once the new home holds the
            # room (until then an offer waits for the dead home's answer, and times out).
            deadline = time.monotonic() + 3 * TIMEOUT
            while lease_holder(redis, room) != "w2":
                assert time.monotonic() < deadline, "no new home"
                await asyncio.sleep(0.2)
            while True:
                teacher, answer = await start_voice(two.base, room, tia, Microphone())
                if answer.status_code == 201:
                    break
                assert answer.status_code == 503, answer.text
                assert time.monotonic() < deadline, answer.text
                await asyncio.sleep(0.5)
            coach, answer = await start_voice(two.base, room, cal, Microphone())
            assert answer.status_code == 201, answer.text
            await teacher.connected(TIMEOUT)
            await coach.connected(TIMEOUT)
            says, spans = script((0.3, utterance("Yes I can hear you again", "en+f3", A_HZ)))
            begin = time.time()
            coach.mic.play(says)
            await asyncio.sleep(spans[-1][1] + 0.8)
            assert teacher.heard.energy(A_HZ, begin) > 0.1
            # The record the dead home wrote is kept, and the new home adds to it.
            deadline = time.monotonic() + TIMEOUT
            while True:
                report = (await talk_of(two.base, cal, room)).json()
                subs = [s["sub"] for s in report["segments"]]
                if "tia" in subs and "cal" in subs:
                    break
                assert time.monotonic() < deadline, report
                await asyncio.sleep(0.3)
        finally:
            await coach.close()
            await teacher.close()
