"""Cycles and their scores as typed records in the store (DESIGN §6), so every worker reads
the same cycle."""

from __future__ import annotations

import msgspec

from server.cycles.model import Cycle, Score
from server.sync.store import Store

CYCLES = "cycle"
SCORES = "score"


class Cycles:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._cycle = msgspec.msgpack.Decoder(Cycle)
        self._score = msgspec.msgpack.Decoder(Score)

    async def get(self, cycle_id: str) -> Cycle | None:
        data = await self._store.get_record(CYCLES, cycle_id)
        return None if data is None else self._cycle.decode(data)

    async def save(self, cycle: Cycle) -> None:
        await self._store.put_record(CYCLES, cycle.id, msgspec.msgpack.encode(cycle))

    async def of(self, person: str) -> list[Cycle]:
        """The cycles `person` is one of the people of, newest first."""
        found = [self._cycle.decode(d) for d in await self._store.list_records(CYCLES)]
        return sorted(
            (c for c in found if person in c.people), key=lambda c: c.created, reverse=True
        )

    async def recorded(self, cycle_id: str, room: str, video: str) -> Cycle | None:
        """A live lesson observed in one of the cycle's sessions was recorded: the recording
        is that session's lesson, and one of the cycle's (docs/cycles.md)."""
        cycle = await self.get(cycle_id)
        if cycle is None:
            return None
        sessions = tuple(
            msgspec.structs.replace(s, video=video) if s.room == room and s.video is None else s
            for s in cycle.sessions
        )
        lessons = tuple(dict.fromkeys([*cycle.lessons, video]))
        changed = msgspec.structs.replace(cycle, sessions=sessions, lessons=lessons)
        if changed != cycle:
            await self.save(changed)
        return changed

    async def score(self, score: Score) -> None:
        """One scorer's level for one criterion of one lesson; a new one replaces theirs."""
        await self._store.put_record(SCORES, score.key, msgspec.msgpack.encode(score))

    async def scores(self, cycle_id: str) -> list[Score]:
        everything = [self._score.decode(d) for d in await self._store.list_records(SCORES)]
        return [s for s in everything if s.cycle == cycle_id]
