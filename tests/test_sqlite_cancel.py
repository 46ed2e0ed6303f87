"""A cancelled SQLite call (server/sync/sqlite.py) keeps the connection's lock until its thread
is done with the connection: closing the database meanwhile would free it under that thread,
which crashed the process (a segfault seen once at a test's teardown)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from server.sync.sqlite import SqliteDatabase


async def test_close_waits_for_a_cancelled_calls_thread(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "db.sqlite3", "CREATE TABLE t (x INTEGER);")
    finished: list[float] = []

    def slow(db: sqlite3.Connection) -> None:
        time.sleep(0.3)
        db.execute("INSERT INTO t VALUES (1)")
        finished.append(time.monotonic())

    call = asyncio.create_task(database._run(slow))
    await asyncio.sleep(0.05)
    call.cancel()
    closing = asyncio.create_task(database.close())
    with pytest.raises(asyncio.CancelledError):
        await call
    await closing
    closed = time.monotonic()
    assert finished and finished[0] <= closed  # the thread was done before the close
