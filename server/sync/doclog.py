"""DocLog: the write-ahead log of a room's shared document (DESIGN §1).

Each worker with clients in a room keeps a replica; it appends the updates its clients make and
applies the ones other workers append. Every entry names the one before it (`prev`), so a
replica that missed an announcement notices the gap at the next one and reads it back from the
log. A compactor folds the log into a snapshot so it does not grow without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

NO_ENTRY = "0-0"  # the id before the first entry of any log


class DocEntry(msgspec.Struct, frozen=True, array_like=True):
    worker: str  # who appended it: a replica skips its own
    prev: str  # the entry before this one in the log
    id: str
    update: bytes


class Loaded(msgspec.Struct, frozen=True):
    snapshot: bytes | None
    entries: list[DocEntry]
    last: str  # id of the last entry folded into snapshot + entries


EntryCallback = Callable[[DocEntry], None]


class DocLog(Protocol):
    async def append(self, room: str, worker: str, update: bytes) -> DocEntry:
        """Durably append `update` and announce it, in log order, to every subscriber."""

    async def append_many(self, worker: str, items: list[tuple[str, bytes]]) -> list[DocEntry]:
        """Append one update to each of several rooms' logs in one round trip: the worker's
        writer sends a whole batch at once rather than a request per room."""

    async def subscribe(self, room: str, callback: EntryCallback) -> None:
        """Returns once every entry appended from now on will reach `callback`."""

    async def unsubscribe(self, room: str, callback: EntryCallback) -> None: ...

    async def load(self, room: str) -> Loaded:
        """The latest snapshot and every entry after it."""

    async def read_after(self, room: str, after: str) -> list[DocEntry]:
        """Entries after `after`, to fill a gap."""

    async def compact(self, room: str, snapshot: bytes, upto: str) -> int:
        """Store `snapshot` (the state through entry `upto`) and drop the entries it covers.
        Returns how many entries remain."""

    async def length(self, room: str) -> int: ...

    async def last_id(self, room: str) -> str:
        """The id of the newest entry (NO_ENTRY for an empty log)."""


def id_key(entry_id: str) -> tuple[int, int]:
    """Order of log ids ("ms-seq", as Redis stream ids)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
