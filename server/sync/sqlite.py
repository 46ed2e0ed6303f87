"""One SQLite database for embedded mode's store and document log. sqlite3 blocks, so every
call runs in a worker thread; one connection behind a lock keeps writes ordered, and WAL lets
`cocoach room create` write while the server runs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from server.errors import ServiceUnavailable

T = TypeVar("T")


class SqliteDatabase:
    def __init__(self, path: Path, schema: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(schema)
        self._lock = asyncio.Lock()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            return await self._run_locked(fn)

    async def _run_locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        work = asyncio.ensure_future(asyncio.to_thread(fn, self._db))
        cancelled = False
        while not work.done():
            try:
                await asyncio.wait({work})
            except asyncio.CancelledError:
                # The thread goes on using the connection whatever happens here: the lock is
                # held until it is done, or close() could free the connection under it (a
                # crash seen at shutdown, not an error). The cancellation is raised after.
                cancelled = True
        if cancelled:
            if not work.cancelled():
                work.exception()  # read, so it is not reported as never retrieved
            raise asyncio.CancelledError
        try:
            return work.result()
        except sqlite3.IntegrityError:
            raise  # the caller knows what a constraint means
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"sqlite failed: {exc}") from exc

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._db.close)
