"""SQLite store for embedded mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from server.errors import Conflict
from server.sync.sqlite import SqliteDatabase
from server.sync.store import (
    MAX_TALK_SEGMENTS,
    RoomRecord,
    VideoRecord,
    decode_record,
    decode_video,
    encode_record,
    encode_video,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (id TEXT PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS room_state (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS talk (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS talk_room ON talk (room, seq);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS videos (
    id TEXT PRIMARY KEY, created REAL NOT NULL, record BLOB NOT NULL
);
"""


class SqliteStore(SqliteDatabase):
    def __init__(self, path: Path, default_org: str | None = None) -> None:
        """`default_org`: organisations are configured, and records made before them belong
        to this one (written into them once, docs/organisations.md)."""
        super().__init__(path, SCHEMA)
        self.talk_limit = MAX_TALK_SEGMENTS
        if default_org is not None:
            stamp_default_org(self._db, default_org)

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

    async def update_room(self, record: RoomRecord) -> bool:
        cursor = await self._run(
            lambda db: db.execute(
                "UPDATE rooms SET record = ? WHERE id = ?", (encode_record(record), record.id)
            )
        )
        return cursor.rowcount > 0

    async def save_room_state(self, room_id: str, data: bytes) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO room_state (id, data) VALUES (?, ?)"
                " ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                (room_id, data),
            )
        )

    async def seed_room_state(self, room_id: str, data: bytes) -> bool:
        cursor = await self._run(
            lambda db: db.execute(
                "INSERT INTO room_state (id, data) VALUES (?, ?) ON CONFLICT(id) DO NOTHING",
                (room_id, data),
            )
        )
        return cursor.rowcount > 0

    async def load_room_state(self, room_id: str) -> bytes | None:
        row = await self._run(
            lambda db: db.execute("SELECT data FROM room_state WHERE id = ?", (room_id,)).fetchone()
        )
        return None if row is None else bytes(row[0])

    async def append_talk(self, room_id: str, data: bytes) -> bool:
        limit = self.talk_limit
        # One statement, so the count and the insert are one step even for another process
        # writing the same file.
        cursor = await self._run(
            lambda db: db.execute(
                "INSERT INTO talk (room, data) SELECT ?, ?"
                " WHERE (SELECT COUNT(*) FROM talk WHERE room = ?) < ?",
                (room_id, data, room_id, limit),
            )
        )
        return cursor.rowcount > 0

    async def load_talk(self, room_id: str) -> list[bytes]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT data FROM talk WHERE room = ? ORDER BY seq", (room_id,)
            ).fetchall()
        )
        return [bytes(row[0]) for row in rows]

    async def delete_talk(self, room_id: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM talk WHERE room = ?", (room_id,)))

    async def put_record(self, kind: str, key: str, data: bytes) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO records (kind, key, data) VALUES (?, ?, ?)"
                " ON CONFLICT(kind, key) DO UPDATE SET data = excluded.data",
                (kind, key, data),
            )
        )

    async def get_record(self, kind: str, key: str) -> bytes | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT data FROM records WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    async def delete_record(self, kind: str, key: str) -> bool:
        cursor = await self._run(
            lambda db: db.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))
        )
        return cursor.rowcount > 0

    async def take_record(self, kind: str, key: str) -> bytes | None:
        # One statement: another process writing the same file cannot take it as well.
        row = await self._run(
            lambda db: db.execute(
                "DELETE FROM records WHERE kind = ? AND key = ? RETURNING data", (kind, key)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    async def list_records(self, kind: str) -> list[bytes]:
        rows = await self._run(
            lambda db: db.execute("SELECT data FROM records WHERE kind = ?", (kind,)).fetchall()
        )
        return [bytes(row[0]) for row in rows]

    async def put_video(self, record: VideoRecord) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO videos (id, created, record) VALUES (?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                (record.id, record.created, encode_video(record)),
            )
        )

    async def update_video(self, record: VideoRecord) -> bool:
        cursor = await self._run(
            lambda db: db.execute(
                "UPDATE videos SET record = ? WHERE id = ?", (encode_video(record), record.id)
            )
        )
        return cursor.rowcount > 0

    async def get_video(self, video_id: str) -> VideoRecord | None:
        row = await self._run(
            lambda db: db.execute("SELECT record FROM videos WHERE id = ?", (video_id,)).fetchone()
        )
        return None if row is None else decode_video(row[0])

    async def list_videos(self) -> list[VideoRecord]:
        rows = await self._run(
            lambda db: db.execute("SELECT record FROM videos ORDER BY created, id").fetchall()
        )
        return [decode_video(row[0]) for row in rows]

    async def delete_video(self, video_id: str) -> bool:
        cursor = await self._run(
            lambda db: db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
        )
        return cursor.rowcount > 0

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def epoch(self) -> str:
        return "sqlite"  # in our own process: it cannot restart under us


ORGS_VERSION = 1  # PRAGMA user_version once records without an org were given the default


def stamp_default_org(db: sqlite3.Connection, org: str) -> None:
    """Give every room and video record without an org the default organisation, once. Only
    when organisations are configured: a label written earlier would not be one of them."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= ORGS_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for row_id, blob in db.execute("SELECT id, record FROM rooms").fetchall():
            room = decode_record(blob)
            if room.org is None:
                room = msgspec.structs.replace(room, org=org)
                db.execute(
                    "UPDATE rooms SET record = ? WHERE id = ?", (encode_record(room), row_id)
                )
        for row_id, blob in db.execute("SELECT id, record FROM videos").fetchall():
            video = decode_video(blob)
            if video.org is None:
                video = msgspec.structs.replace(video, org=org)
                db.execute(
                    "UPDATE videos SET record = ? WHERE id = ?", (encode_video(video), row_id)
                )
        db.execute(f"PRAGMA user_version = {ORGS_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
