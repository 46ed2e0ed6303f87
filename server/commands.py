"""The CLI's commands other than `serve`, each imported only when it runs (server/cli.py): the
supervisor that `cocoach serve` becomes stays small and quick to start."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time

from server.documents.frameworks import BUILTIN_DIR, FrameworkLibrary
from server.errors import InvalidField
from server.library.purge import Purged, purge_expired
from server.orgs import Orgs
from server.rooms.roles import Role
from server.session.room_records import ROOM_ID, check_room_video, new_room_id
from server.settings import Settings
from server.sync.audit import Actor, AuditEvent
from server.sync.backend import open_audit, open_store
from server.sync.store import RoomRecord
from server.tokens import mint, new_sub


def token(settings: Settings, args: argparse.Namespace) -> str:
    grants: dict[str, bool] = {}
    for item in args.grant:
        name, _, value = item.partition("=")
        grants[name] = value.lower() in ("1", "true", "yes", "on", "")
    assert settings.secret is not None
    return mint(
        settings.secret,
        room=args.room,
        role=Role(args.role),
        name=args.name,
        sub=args.sub or new_sub(),
        ttl=args.ttl,
        org=args.org,
        grants=grants or None,
    )


async def create_room(
    settings: Settings,
    title: str,
    room_id: str | None,
    org: str | None,
    framework: str | None = None,
    video: str | None = None,
    shared: tuple[str, ...] = (),
) -> str:
    if room_id is not None and not ROOM_ID.match(room_id):
        raise InvalidField("--id must be 1-64 characters of A-Z a-z 0-9 _ -")
    if framework is not None:
        FrameworkLibrary(BUILTIN_DIR, settings.data / "frameworks").get(framework)
    orgs = Orgs.parse(settings.orgs, settings.default_org)
    org = orgs.check_org(org, "--org")
    record = RoomRecord(
        id=room_id or new_room_id(),
        title=title,
        created=time.time(),
        org=org,
        framework=framework,
        video=video,
        shared=orgs.check_shared(orgs.owning(org), shared),
    )
    async with open_store(settings) as store, open_audit(settings) as audit:
        await check_room_video(orgs, store, record)
        await store.create_room(record)
        await audit.append(
            [
                AuditEvent(
                    time=time.time(),
                    action="room.create",
                    actor=Actor(sub="cli", role="admin"),
                    room=record.id,
                    video=video,
                    detail={"title": title, "org": org, "by": "cocoach room create"},
                )
            ]
        )
    return record.id


async def purge(settings: Settings, *, dry_run: bool) -> list[str]:
    """The retention job's selection and deletion, once, against the configured store. One
    line per video, then a count alone on the last line."""
    root = settings.library or settings.data / "videos"
    async with open_store(settings) as store, open_audit(settings) as audit:

        async def delete(video_id: str) -> bool:
            existed = await store.delete_video(video_id)
            await asyncio.to_thread(shutil.rmtree, root / video_id, ignore_errors=True)
            return existed

        async def noted(purged: Purged) -> None:
            await audit.append([purged.event("cocoach purge")])

        done = await purge_expired(
            store,
            root,
            settings.video_retention_days,
            delete=delete,
            noted=noted,
            dry_run=dry_run,
        )
    verb = "would delete" if dry_run else "deleted"
    count = f"{len(done)} video{'' if len(done) == 1 else 's'}"
    return [f"{verb} {p.describe()}" for p in done] + [
        f"{count} {'would be deleted' if dry_run else 'deleted'}"
    ]
