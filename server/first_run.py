"""A first `cocoach serve` on an empty data folder: the demo room, its two people, its lesson
made before the links are printed, and the links."""

from __future__ import annotations

import sys
import time

from server.library.child import IngestFailed
from server.library.ingest import make_served, served_ready
from server.library.library import add_generated_video
from server.people.directory import People
from server.rooms.roles import Role
from server.settings import Settings
from server.sync.backend import open_store
from server.sync.store import RoomRecord
from server.tokens import mint

DEMO_ROOM = "demo"
DEMO_COACH = "coach@demo.invalid"  # .invalid: never a real address (RFC 2606)
DEMO_TEACHER = "teacher@demo.invalid"


async def create_demo(settings: Settings) -> bool:
    """The demo room, with a generated lesson clip that the server's ingest makes and
    transcodes in the background once it runs (so the first start stays quick)."""
    async with open_store(settings) as store:
        if await store.get_room(DEMO_ROOM) is not None:
            return False
        video = None
        if settings.demo_clip_seconds > 0:
            demo = await add_generated_video(
                store,
                settings.library or settings.data / "videos",
                "Demo lesson clip",
                settings.demo_clip_seconds,
            )
            video = demo.id
        people = People(store)
        org = settings.default_org
        coach = await people.by_email(DEMO_COACH) or await people.add(
            name="Demo coach", org=org, email=DEMO_COACH, roles=("coach",)
        )
        teacher = await people.by_email(DEMO_TEACHER) or await people.add(
            name="Demo teacher", org=org, email=DEMO_TEACHER
        )
        await store.create_room(
            RoomRecord(
                id=DEMO_ROOM,
                title="Demo lesson",
                created=time.time(),
                video=video,
                org=org if settings.orgs.strip() else None,
                people={coach.id: "coach", teacher.id: "teacher"},
            )
        )
        return True


async def make_demo_lesson(settings: Settings) -> bool:
    """The demo lesson, made before its links are printed, so whoever opens one at once sees
    it play: generated straight into its served form, a few seconds' work, once (it stays in
    the data folder). Should that fail, the server's ingest makes it once it runs."""
    async with open_store(settings) as store:
        room = await store.get_room(DEMO_ROOM)
        video = await store.get_video(room.video) if room is not None and room.video else None
        if video is None or video.status != "queued" or not video.generate:
            return False
        print(f"making the demo lesson ({video.generate:g} s of video, once)…", flush=True)
        root = settings.library or settings.data / "videos"
        try:
            rendition = await make_served(root, video)
        except IngestFailed as exc:
            print(
                f"cocoach: the demo lesson was not made now ({exc}); the server makes it once "
                "it runs",
                file=sys.stderr,
                flush=True,
            )
            return False
        await store.update_video(served_ready(video, rendition))
        return True


def print_first_run(settings: Settings, base: str, *, made: bool) -> None:
    assert settings.secret is not None
    links = {
        role: f"{base}/r/{DEMO_ROOM}?token="
        + mint(
            settings.secret,
            room=DEMO_ROOM,
            role=role,
            name=f"Demo {role.value}",
            sub=f"demo-{role.value}",
            ttl=8 * 3600,
        )
        for role in (Role.COACH, Role.TEACHER)
    }
    lesson = (
        "The demo lesson is ready: open an invite and it plays."
        if made
        else "The demo lesson video is being made in the background."
    )
    print(
        "First run: created the demo room and the secrets in "
        f"{settings.data.resolve()}.\n"
        f"  Coach invite:   {links[Role.COACH]}\n"
        f"  Teacher invite: {links[Role.TEACHER]}\n"
        f"{lesson}\n"
        "More invites: cocoach token --room demo --role coach --name YourName\n"
        f"A new sign-in link: cocoach login-link --email {DEMO_COACH}\n"
        f"Admin key (for /api): {settings.data / 'admin_key'}",
        flush=True,
    )
