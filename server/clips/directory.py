"""Clips, groups and viewings as typed records in the store (DESIGN §6), so every worker reads
the same ones."""

from __future__ import annotations

import msgspec

from server.clips.model import Clip, Group, Viewing
from server.sync.store import Store

CLIPS = "clip"
GROUPS = "group"
VIEWINGS = "viewing"


class Clips:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._clip = msgspec.msgpack.Decoder(Clip)
        self._group = msgspec.msgpack.Decoder(Group)
        self._viewing = msgspec.msgpack.Decoder(Viewing)

    # clips

    async def get(self, clip_id: str) -> Clip | None:
        data = await self._store.get_record(CLIPS, clip_id)
        return None if data is None else self._clip.decode(data)

    async def save(self, clip: Clip) -> None:
        await self._store.put_record(CLIPS, clip.id, msgspec.msgpack.encode(clip))

    async def delete(self, clip_id: str) -> bool:
        return await self._store.delete_record(CLIPS, clip_id)

    async def all(self) -> list[Clip]:
        return [self._clip.decode(d) for d in await self._store.list_records(CLIPS)]

    async def of_owner(self, owner: str) -> list[Clip]:
        mine = [c for c in await self.all() if c.owner == owner]
        return sorted(mine, key=lambda c: c.created, reverse=True)

    async def of_video(self, video: str) -> list[Clip]:
        return [c for c in await self.all() if c.video == video or c.media == video]

    # groups

    async def group(self, group_id: str) -> Group | None:
        data = await self._store.get_record(GROUPS, group_id)
        return None if data is None else self._group.decode(data)

    async def save_group(self, group: Group) -> None:
        await self._store.put_record(GROUPS, group.id, msgspec.msgpack.encode(group))

    async def groups_of(self, person: str) -> list[Group]:
        found = [self._group.decode(d) for d in await self._store.list_records(GROUPS)]
        return sorted((g for g in found if g.has(person)), key=lambda g: g.name.lower())

    # one's own viewing room of a clip

    async def viewing(self, clip: str, person: str) -> Viewing | None:
        data = await self._store.get_record(VIEWINGS, f"{clip}|{person}")
        return None if data is None else self._viewing.decode(data)

    async def save_viewing(self, viewing: Viewing) -> None:
        key = f"{viewing.clip}|{viewing.person}"
        await self._store.put_record(VIEWINGS, key, msgspec.msgpack.encode(viewing))
