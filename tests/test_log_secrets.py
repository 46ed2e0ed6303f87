"""No token in any log line: a whole session against real worker processes logging at DEBUG,
with the tokens in query strings as browsers send them, and then a grep of every line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets

from tests.support import (
    ADMIN_KEY,
    SECRET,
    TIMEOUT,
    RedisServer,
    connect,
    join,
    start_worker,
    token,
)
from tests.test_multiworker import create_room
from tests.yclient import ydoc


async def test_a_full_session_logs_no_token(tmp_path: Path, redis: RedisServer) -> None:
    one = start_worker(tmp_path / "w1", redis.url, "w1", log_level="DEBUG")
    two = start_worker(
        tmp_path / "w2", redis.url, "w2", log_level="DEBUG", COCOACH_LOG_FORMAT="json"
    )
    try:
        room = create_room(one.base)
        coach, teacher = token(room, "coach", "Ann"), token(room, "teacher", "Tess")
        forged = token(room, "coach", "Mallory", secret="not-the-secret-" + "x" * 40)
        garbage = "garbage-token-0123456789abcdef"
        async with (
            join(one.base, room, "coach", "Ann") as ann,
            join(two.base, room, "teacher", "Tess") as tess,
            ydoc(one.base, room, coach) as ann_doc,
            ydoc(two.base, room, teacher) as tess_doc,
        ):
            await ann.expect("member_joined")
            await tess.send(type="play")
            await ann.expect("playback")
            ann_doc.plan += "Try think-pair-share; see 12:03."
            await ann_doc.flush()
            await tess_doc.until(lambda: "think-pair-share" in str(tess_doc.plan))
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                export = await http.get(
                    f"{two.base}/api/rooms/{room}/export.csv",
                    params={"token": teacher},
                    headers={"X-Request-Id": "export-1"},
                )
                assert export.status_code == 200, export.text
                for bad in (forged, garbage):
                    refused = await http.get(
                        f"{one.base}/api/rooms/{room}/export.csv", params={"token": bad}
                    )
                    assert refused.status_code == 401
                    refused = await http.get(
                        f"{two.base}/api/rooms", headers={"Authorization": f"Bearer {bad}"}
                    )
                    assert refused.status_code == 401
            for bad in (forged, garbage):
                for base in (one.base, two.base):
                    async with connect(base, room, bad) as client:
                        code, _ = await client.closed()
                        assert code == 4002
            try:
                async with websockets.connect(
                    f"{one.base.replace('http', 'ws', 1)}/yjs/{room}?token={forged}"
                ) as ws:
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4002
        for worker in (one, two):
            worker.kill()
        logs = {worker.worker_id: worker.log.read_text() for worker in (one, two)}
        everything = "\n".join(logs.values())
        assert len(everything.splitlines()) > 50, "DEBUG logging did not reach the log files"
        assert f"/rooms/{room}/ws" in everything or "/yjs/" in everything, "no request logged"
        for secret in (coach, teacher, forged, garbage, ADMIN_KEY, SECRET):
            assert secret not in everything, f"a secret in the logs: {secret[:12]}..."
        for part in (coach, teacher, forged):  # not even the signature alone
            assert part.rsplit(".", 1)[1] not in everything
        # The JSON worker writes one object a line, naming the worker, room and request.
        entries = [json.loads(line) for line in logs["w2"].splitlines() if line.startswith("{")]
        assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
        exported = [e for e in entries if e.get("request_id") == "export-1"]
        assert exported and all(e["worker"] == "w2" and e["room"] == room for e in exported)
    finally:
        for worker in (one, two):
            worker.kill()
