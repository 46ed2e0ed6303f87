"""Between a client and its worker: delays, stalls and cuts. The client reconnects and resumes
from where it was; nothing is lost and no note appears twice."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import websockets
from pycrdt import Array, Doc, Map

from tests.faults import FaultyProxy
from tests.support import TIMEOUT, Running, token
from tests.yclient import ydoc


async def edit_through_faults(proxy: FaultyProxy, room: str, doc: Doc[Any], name: str) -> int:
    """Type a fragment and add a note every 20 ms for 120 steps, reconnecting whenever the
    connection is lost, always with the same document (y-websocket does the same)."""
    step = connections = 0
    while step < 120:
        with contextlib.suppress(websockets.ConnectionClosed, OSError, TimeoutError):
            async with ydoc(proxy.base, room, token(room, "coach", name, sub="user:ann"), doc) as c:
                connections += 1
                while step < 120:
                    c.plan += f"<{name}{step}>"
                    c.timeline[f"{name}-{step}"] = Map(
                        {
                            "start": float(step),
                            "text": "n",
                            "tags": Array([]),
                            "author": "user:ann",
                            "created": 1.0,
                        }
                    )
                    step += 1
                    await c.flush()
                    await asyncio.sleep(0.02)
        if step < 120:
            await asyncio.sleep(0.05)  # then reconnect; the handshake sends what the server lacks
    return connections


async def test_cuts_stalls_and_delays_lose_nothing(embedded: Running) -> None:
    port = int(embedded.base.rsplit(":", 1)[1])
    doc: Doc[Any] = Doc()
    async with FaultyProxy(port) as proxy:
        proxy.delay = 0.005
        editing = asyncio.create_task(edit_through_faults(proxy, "r1", doc, "a"))
        for _ in range(3):
            await asyncio.sleep(0.4)
            proxy.cut()
            await asyncio.sleep(0.2)
            async with proxy.stalled():
                await asyncio.sleep(0.3)
        connections = await asyncio.wait_for(editing, 6 * TIMEOUT)
    assert connections >= 3, "the faults did not interrupt the editing"

    fragments = [f"<a{i}>" for i in range(120)]
    async with ydoc(embedded.base, "r1", token("r1", "observer", "Obi")) as reader:
        await reader.until(
            lambda: all(f in str(reader.plan) for f in fragments), timeout=2 * TIMEOUT
        )
        plan = str(reader.plan)
        assert all(plan.count(f) == 1 for f in fragments), "a fragment appears twice"
        assert sorted(reader.timeline.keys()) == sorted(f"a-{i}" for i in range(120))
