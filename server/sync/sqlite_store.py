"""SQLite store for embedded mode. sqlite3 blocks, so every call runs in a worker thread; one
connection behind a lock keeps writes ordered. WAL lets `cocoach room create` write while the
server runs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from server.errors import Conflict, ServiceUnavailable
from server.sync.store import RoomRecord, decode_record, encode_record

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (id TEXT PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS room_state (id TEXT PRIMARY KEY, data BLOB NOT NULL);
"""


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._lock = asyncio.Lock()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            try:
                return await asyncio.to_thread(fn, self._db)
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise ServiceUnavailable(f"sqlite store failed: {exc}") from exc

    async def create_room(self, record: RoomRecord) -> None:
        try:
            await self._run(
                lambda db: db.execute(
                    "INSERT INTO rooms (id, record) VALUES (?, ?)",
                    (record.id, encode_record(record)),
                )
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"room {record.id!r} already exists") from None

    async def get_room(self, room_id: str) -> RoomRecord | None:
        row = await self._run(
            lambda db: db.execute("SELECT record FROM rooms WHERE id = ?", (room_id,)).fetchone()
        )
        return None if row is None else decode_record(row[0])

    async def list_rooms(self) -> list[RoomRecord]:
        rows = await self._run(
            lambda db: db.execute("SELECT record FROM rooms ORDER BY id").fetchall()
        )
        return [decode_record(row[0]) for row in rows]

    async def save_room_state(self, room_id: str, data: bytes) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO room_state (id, data) VALUES (?, ?)"
                " ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                (room_id, data),
            )
        )

    async def load_room_state(self, room_id: str) -> bytes | None:
        row = await self._run(
            lambda db: db.execute("SELECT data FROM room_state WHERE id = ?", (room_id,)).fetchone()
        )
        return None if row is None else bytes(row[0])

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def epoch(self) -> str:
        return "sqlite"  # in our own process: it cannot restart under us

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._db.close)
