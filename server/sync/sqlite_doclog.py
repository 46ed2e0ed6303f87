"""Embedded DocLog: SQLite for durability, in-process fan-out. One process, so appends are
ordered by a lock and announced in that order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.sync.broker import Fanout
from server.sync.doclog import NO_ENTRY, DocEntry, EntryCallback, Loaded, id_key
from server.sync.sqlite import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS doc_entries (
  room TEXT NOT NULL, seq INTEGER NOT NULL, worker TEXT NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (room, seq)
);
CREATE TABLE IF NOT EXISTS doc_snapshots (
  room TEXT PRIMARY KEY, upto INTEGER NOT NULL, data BLOB NOT NULL
);
"""


def _id(seq: int) -> str:
    return f"{seq}-0"


class SqliteDocLog(SqliteDatabase):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)
        self._fanout: Fanout[DocEntry] = Fanout()
        self._last: dict[str, int] = {}

    def _last_seq(self, db: sqlite3.Connection, room: str) -> int:
        last = self._last.get(room)
        if last is None:
            row = db.execute(
                "SELECT MAX(seq) FROM (SELECT seq FROM doc_entries WHERE room = ?"
                " UNION ALL SELECT upto FROM doc_snapshots WHERE room = ?)",
                (room, room),
            ).fetchone()
            last = self._last[room] = int(row[0] or 0)
        return last

    async def append(self, room: str, worker: str, update: bytes) -> DocEntry:
        def write(db: sqlite3.Connection) -> DocEntry:
            prev = self._last_seq(db, room)
            seq = prev + 1
            db.execute(
                "INSERT INTO doc_entries (room, seq, worker, data) VALUES (?, ?, ?, ?)",
                (room, seq, worker, update),
            )
            self._last[room] = seq
            return DocEntry(worker, _id(prev) if prev else NO_ENTRY, _id(seq), update)

        async with self._lock:
            entry = await self._run_locked(write)
            # Announced under the lock: subscribers hear entries in log order.
            self._fanout.dispatch(room, entry)
        return entry

    async def append_many(self, worker: str, items: list[tuple[str, bytes]]) -> list[DocEntry]:
        return [await self.append(room, worker, update) for room, update in items]

    async def subscribe(self, room: str, callback: EntryCallback) -> None:
        self._fanout.add(room, callback)

    async def unsubscribe(self, room: str, callback: EntryCallback) -> None:
        self._fanout.remove(room, callback)

    async def load(self, room: str) -> Loaded:
        def read(db: sqlite3.Connection) -> Loaded:
            snap = db.execute(
                "SELECT upto, data FROM doc_snapshots WHERE room = ?", (room,)
            ).fetchone()
            upto = int(snap[0]) if snap else 0
            entries = self._entries(db, room, upto)
            last = entries[-1].id if entries else (_id(upto) if upto else NO_ENTRY)
            return Loaded(bytes(snap[1]) if snap else None, entries, last)

        return await self._run(read)

    def _entries(self, db: sqlite3.Connection, room: str, after: int) -> list[DocEntry]:
        rows = db.execute(
            "SELECT seq, worker, data FROM doc_entries WHERE room = ? AND seq > ? ORDER BY seq",
            (room, after),
        ).fetchall()
        entries, prev = [], after
        for seq, worker, data in rows:
            entries.append(DocEntry(worker, _id(prev) if prev else NO_ENTRY, _id(seq), bytes(data)))
            prev = seq
        return entries

    async def read_after(self, room: str, after: str) -> list[DocEntry]:
        return await self._run(lambda db: self._entries(db, room, id_key(after)[0]))

    async def compact(self, room: str, snapshot: bytes, upto: str) -> int:
        seq = id_key(upto)[0]

        def write(db: sqlite3.Connection) -> int:
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO doc_snapshots (room, upto, data) VALUES (?, ?, ?)"
                " ON CONFLICT(room) DO UPDATE SET upto = excluded.upto, data = excluded.data"
                " WHERE excluded.upto > doc_snapshots.upto",
                (room, seq, snapshot),
            )
            db.execute("DELETE FROM doc_entries WHERE room = ? AND seq <= ?", (room, seq))
            db.execute("COMMIT")
            row = db.execute("SELECT COUNT(*) FROM doc_entries WHERE room = ?", (room,)).fetchone()
            return int(row[0])

        async with self._lock:
            return await self._run_locked(write)

    async def length(self, room: str) -> int:
        row = await self._run(
            lambda db: db.execute(
                "SELECT COUNT(*) FROM doc_entries WHERE room = ?", (room,)
            ).fetchone()
        )
        return int(row[0])

    async def last_id(self, room: str) -> str:
        seq = await self._run(lambda db: self._last_seq(db, room))
        return _id(seq) if seq else NO_ENTRY
