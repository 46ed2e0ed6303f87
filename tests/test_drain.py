"""Stopping a worker with SIGTERM (docs/operations.md#stopping-a-worker), with real worker
processes on a real Redis: its clients are told to reconnect, land on the other worker, and
find every edit another client had already seen."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from pycrdt import Text

from server.errors import CloseCode
from tests.support import TIMEOUT, RedisServer, join, start_worker, token
from tests.test_documents_multiworker import stored_doc
from tests.test_multiworker import create_room, lease_holder
from tests.yclient import ydoc


async def test_sigterm_sends_clients_elsewhere_and_loses_no_acknowledged_edit(
    tmp_path: Path, redis: RedisServer
) -> None:
    one = start_worker(tmp_path / "w1", redis.url, "w1", COCOACH_DRAIN_SECONDS="3")
    two = start_worker(tmp_path / "w2", redis.url, "w2")
    try:
        room = create_room(one.base)
        async with (
            join(one.base, room, "coach", "Ann") as ann,
            join(two.base, room, "teacher", "Tess") as tess,
            ydoc(two.base, room, token(room, "teacher", "Tess")) as tess_doc,
        ):
            await ann.expect("member_joined")
            assert lease_holder(redis, room) == "w1"  # the first to join made w1 the home
            async with ydoc(one.base, room, token(room, "coach", "Ann")) as ann_doc:
                for i in range(30):
                    ann_doc.plan += f"line {i}. "
                    await ann_doc.flush()
                # Acknowledged: another client, on the other worker, has seen it.
                await tess_doc.until(lambda: "line 29." in str(tess_doc.plan))
                kept = ann_doc.doc

                stopping = time.monotonic()
                one.process.send_signal(signal.SIGTERM)
                reconnect = await ann.expect("reconnect")
                assert reconnect["reason"] == "server restarting" and reconnect["after"] > 0
                code, reason = await ann.closed()
                assert code == CloseCode.SERVICE_RESTART and reason.startswith("service restart")
                await asyncio.wait_for(ann_doc.ws.wait_closed(), TIMEOUT)
                assert ann_doc.ws.close_code == CloseCode.SERVICE_RESTART

            # The home moved at once, not after the lease's TTL: w2 took it over.
            left = await tess.expect("member_left", timeout=TIMEOUT)
            assert left["id"] == ann.id
            assert lease_holder(redis, room) == "w2"
            # Bounded by the drain time (3 s) and the process's own exit, which a loaded
            # machine slows: generous, since the bound is what matters, not the speed.
            assert one.process.wait(3 + 2 * TIMEOUT) in (0, -signal.SIGTERM)
            assert time.monotonic() - stopping < 3 + 3 * TIMEOUT

            # Ann reconnects (through the load balancer: here, to the other worker).
            async with (
                join(two.base, room, "coach", "Ann") as again,
                ydoc(two.base, room, token(room, "coach", "Ann"), kept) as again_doc,
            ):
                assert {m["name"] for m in again.welcome["members"]} == {"Ann", "Tess"}
                again_doc.plan += "after the restart."
                await again_doc.flush()
                await tess_doc.until(lambda: "after the restart." in str(tess_doc.plan))
        expected = "".join(f"line {i}. " for i in range(30)) + "after the restart."
        assert str(tess_doc.plan) == expected
        stored = await stored_doc(redis, room)
        assert str(stored.get("plan", type=Text)) == expected
        assert "Traceback" not in one.log.read_text()
    finally:
        for worker in (one, two):
            worker.kill()
