"""Embedded mode: `cocoach serve` supervises its worker. SIGKILL the worker while a coach
plays the lesson and three people type into the plan: a new worker starts on the same port,
everyone is back within 3 s, and nothing anyone was told of is lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
from pycrdt import Doc, Text

from tests.support import SLOWNESS, TIMEOUT, join, start_worker, token
from tests.test_multiworker import create_room
from tests.yclient import ydoc

# Issue 20: back within 3 s. Stretched like every other real-time check on a loaded machine
# (COCOACH_TEST_SLOWNESS): the new worker's start is CPU, and three test processes share two
# cores. bench/restart.py measures it on a quiet machine.
RECONNECT_WITHIN = 3.0 * SLOWNESS
FRAGMENTS = [f"<{n}{i}>" for n in "pqr" for i in range(60)]


async def typist(
    base: str, room: str, name: str, doc: Doc[Any], steps: int, reconnected: list[float]
) -> None:
    """Type `steps` fragments; when the worker goes, reconnect to the same address until the
    new worker answers; stay until everyone's fragments have arrived."""
    step, lost_at = 0, None
    deadline = time.monotonic() + 6 * TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(websockets.ConnectionClosed, OSError, TimeoutError):
            async with ydoc(base, room, token(room, "teacher", name), doc) as client:
                if lost_at is not None:
                    reconnected.append(time.monotonic() - lost_at)
                    lost_at = None
                while step < steps:
                    client.plan += f"<{name}{step}>"
                    step += 1
                    await client.flush()
                    await asyncio.sleep(0.03)
                await client.until(lambda: all(f in str(client.plan) for f in FRAGMENTS))
                return
        if lost_at is None:
            lost_at = time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} could not reconnect")


async def test_a_killed_worker_comes_back_with_everything_acknowledged(tmp_path: Path) -> None:
    server = start_worker(tmp_path / "data", None, "w1", COCOACH_DEMO_CLIP_SECONDS="0")
    try:
        base = server.base
        room = create_room(base)
        first = server.worker_pids()
        assert len(first) == 1 and first[0] != server.process.pid
        async with join(base, room, "coach", "Ann") as ann:
            await ann.send(type="seek", position=100.0)
            await ann.send(type="play")
            playing = (await ann.expect("playback"))["playback"]
            while playing["status"] != "playing":
                playing = (await ann.expect("playback"))["playback"]
        docs = {n: Doc() for n in "pqr"}
        for doc in docs.values():
            doc.get("plan", type=Text)
        reconnected: list[float] = []
        typing = [
            asyncio.create_task(typist(base, room, n, docs[n], 60, reconnected)) for n in "pqr"
        ]
        await asyncio.sleep(1.0)
        os.kill(first[0], signal.SIGKILL)  # the worker, not its supervisor
        await asyncio.gather(*typing)

        assert server.process.poll() is None, "the supervisor stays"
        pids = server.worker_pids()
        assert len(pids) == 2 and pids[1] != first[0], pids
        # Every typist was back, on the new worker, within 3 s of losing the old one.
        assert len(reconnected) == 3 and max(reconnected) < RECONNECT_WITHIN, reconnected
        # The room's playback is the one the coach was told of before the crash.
        async with join(base, room, "observer", "Obi") as obi:
            state = obi.welcome["playback"]
            assert state["status"] == "playing" and state["seq"] == playing["seq"]
            assert state["position"] == playing["position"] and state["at"] == playing["at"]
        async with ydoc(base, room, token(room, "observer", "Obi")) as reader:
            await reader.until(lambda: all(f in str(reader.plan) for f in FRAGMENTS))
            final = str(reader.plan)
        assert all(final.count(f) == 1 for f in FRAGMENTS)
        for doc in docs.values():
            assert str(doc.get("plan", type=Text)) == final
    finally:
        server.kill()
    # Killing the supervisor takes its worker with it: nothing keeps the port.
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            os.kill(server.worker_pids()[-1], 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the worker outlived its supervisor"
        await asyncio.sleep(0.05)


async def test_sigterm_drains_the_worker_and_stops_the_supervisor(tmp_path: Path) -> None:
    server = start_worker(tmp_path / "data", None, "w1", COCOACH_DEMO_CLIP_SECONDS="0")
    try:
        room = create_room(server.base)
        async with join(server.base, room, "coach", "Ann") as ann:
            server.process.send_signal(signal.SIGTERM)
            assert (await ann.expect("reconnect"))["type"] == "reconnect"
        assert server.process.wait(3 * TIMEOUT) == 0
        assert len(server.worker_pids()) == 1, "a stopped worker is not started again"
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{server.base}/healthz", timeout=0.5)
            raise AssertionError("still answering after SIGTERM")
    finally:
        server.kill()


def test_a_worker_that_cannot_start_is_retried_ever_more_slowly(tmp_path: Path) -> None:
    """A worker that dies before it serves would die again at once: the supervisor backs off
    (0.1 s doubling to 5 s) instead of spinning. One that served is started again at once."""
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "COCOACH_ORGS": "north: ashby; north: brook",
        "COCOACH_DEMO_CLIP_SECONDS": "0",  # the demo lesson is not what this is about
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--data", str(tmp_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 6 * TIMEOUT
        while len(re.findall(r"starting it again in ([\d.]+) s", log.read_text())) < 4:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        delays = [float(d) for d in re.findall(r"starting it again in ([\d.]+) s", log.read_text())]
        assert delays[:4] == [0.2, 0.4, 0.8, 1.6], delays
    finally:
        process.kill()
        process.wait(TIMEOUT)
