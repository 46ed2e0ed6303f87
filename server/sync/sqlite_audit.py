"""The audit log in SQLite (embedded mode): `<data>/audit.sqlite3`, a file of its own so the
store's tables and the log's growth stay apart. Triggers refuse any UPDATE or DELETE: the log
is append-only even to someone holding a SQLite shell."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.sync.audit import AuditEvent, AuditQuery, decode_event, encode_event, matches
from server.sync.sqlite import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
    room TEXT, video TEXT, event BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
CREATE INDEX IF NOT EXISTS audit_room ON audit (room, seq);
CREATE INDEX IF NOT EXISTS audit_video ON audit (video, seq);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

_COLUMNS = ("room", "video", "actor", "action")


class SqliteAuditLog(SqliteDatabase):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    async def append(self, events: list[AuditEvent]) -> None:
        rows = [(e.time, e.action, e.actor.sub, e.room, e.video, encode_event(e)) for e in events]

        def insert(db: sqlite3.Connection) -> None:
            with db:  # one transaction: a batch is stored whole or not at all
                db.executemany(
                    "INSERT INTO audit (time, action, actor, room, video, event)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )

        await self._run(insert)

    async def query(self, query: AuditQuery) -> tuple[list[AuditEvent], bool]:
        where: list[str] = []
        args: list[object] = []
        for column in _COLUMNS:
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("time >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("time < ?")
            args.append(query.until)
        if query.after is not None:
            where.append("seq > ?")
            args.append(int(query.after) if query.after.isdigit() else 0)
        sql = "SELECT seq, event FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq LIMIT ?"
        args.append(query.limit + 1)
        rows = await self._run(lambda db: db.execute(sql, args).fetchall())
        events = [decode_event(bytes(row[1]), str(row[0])) for row in rows]
        events = [e for e in events if matches(e, query)]
        return events[: query.limit], len(events) > query.limit
