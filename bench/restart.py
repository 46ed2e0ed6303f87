"""How long an embedded server's rooms are away when its worker dies (issue 20).

`cocoach serve` supervises its worker (server/supervisor.py). This kills the worker with SIGKILL
`--kills` times while a coach is in a room, and times, from the kill:
- `started`: the supervisor's line saying a new worker process started;
- `ready`: /readyz answers 200 again;
- `back`: a room-protocol client gets its `welcome` with the playback state from before.

    .venv/bin/python -m bench.restart --kills 5

Loopback only; every wait is bounded; it starts and stops its own server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import msgspec
import websockets

from bench import infra
from bench.kit import BenchError, cli
from bench.kit.stats import summary

ROOM = "restart"
WAIT = 15.0  # seconds at most for any one step


def ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=0.5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def welcome(base: str) -> dict[str, Any]:
    url = f"{base.replace('http', 'ws', 1)}/rooms/{ROOM}/ws?token={infra.coach_token(ROOM, 'c')}"
    async with websockets.connect(url, open_timeout=2) as ws:
        while True:
            frame: dict[str, Any] = msgspec.msgpack.decode(await ws.recv())
            if frame["type"] == "welcome":
                return frame


async def seek(base: str, position: float) -> dict[str, Any]:
    url = f"{base.replace('http', 'ws', 1)}/rooms/{ROOM}/ws?token={infra.coach_token(ROOM, 'c')}"
    async with websockets.connect(url) as ws:
        await ws.send(msgspec.msgpack.encode({"type": "seek", "position": position}))
        while True:
            frame: dict[str, Any] = msgspec.msgpack.decode(await ws.recv())
            if frame["type"] == "playback" and frame["playback"]["position"] == position:
                return dict(frame["playback"])


async def until(check: Any, what: str) -> float:
    started = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - started
        except (OSError, websockets.InvalidStatus, websockets.ConnectionClosed, TimeoutError):
            pass
        if time.monotonic() - started > WAIT:
            raise BenchError(f"not {what} within {WAIT} s")
        await asyncio.sleep(0.01)


async def main(args: Any) -> dict[str, Any]:
    figures: dict[str, list[float]] = {"started": [], "ready": [], "back": []}
    with cli.stack(args.keep_logs) as stack:
        server = await asyncio.to_thread(stack.cocoach, "w1", None)
        infra.create_room(server.base, ROOM)
        for kill in range(args.kills):
            playback = await seek(server.base, 10.0 + kill)
            workers = len(server.log_lines(infra.WORKER_STARTED))
            victim = server.pid
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)

            async def started(count: int = workers) -> bool:
                return len(server.log_lines(infra.WORKER_STARTED)) > count

            async def answering() -> bool:
                return await asyncio.to_thread(ready, server.base)

            async def rejoined(expected: dict[str, Any] = playback) -> bool:
                state = (await welcome(server.base))["playback"]
                if state["seq"] != expected["seq"]:
                    raise BenchError(f"playback lost in the crash: {state} != {expected}")
                return True

            await until(started, "restarted")
            figures["started"].append(time.monotonic() - killed)
            await until(answering, "ready")
            figures["ready"].append(time.monotonic() - killed)
            await until(rejoined, "back")
            figures["back"].append(time.monotonic() - killed)
            print(
                f"kill {kill + 1}: worker {victim} -> {server.pid}: started "
                f"{figures['started'][-1]:.2f} s, ready {figures['ready'][-1]:.2f} s, room back "
                f"{figures['back'][-1]:.2f} s",
                flush=True,
            )
    print(f"\nmachine: {infra.machine()}; cocoach at {infra.code_version()}")
    print("| seconds from SIGKILL to | p50 | max |\n|---|---|---|")
    results: dict[str, Any] = {}
    for step, values in figures.items():
        stats = summary(values, (0.5,))
        results[step] = {**stats, "all": values}
        print(f"| {step} | {stats['p50_ms'] / 1000:.2f} | {stats['max_ms'] / 1000:.2f} |")
    goal = max(figures["back"]) <= 3.0
    print(f"goal: every room back within 3 s: {'met' if goal else 'MISSED'}")
    return results


if __name__ == "__main__":
    parser = cli.parser("python -m bench.restart", __doc__)
    parser.add_argument("--kills", type=int, default=5, help="how many times to kill the worker")
    cli.output_options(parser, max_seconds=120.0)
    arguments = parser.parse_args()
    data = cli.run(main, arguments)
    cli.write_json(arguments.json, data)
    if arguments.json:
        print(json.dumps({"written": arguments.json}))
