"""`cocoach`: serve, mint tokens, create rooms, purge expired videos. Commands that produce
something print it alone on their last line, so scripts can take it with `tail -n 1`."""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

import uvicorn

from server import __version__, logs, preflight
from server.documents.frameworks import BUILTIN_DIR, FrameworkLibrary
from server.errors import CocoachError, InvalidField
from server.library.child import IngestFailed
from server.library.ingest import make_served, served_ready
from server.library.library import add_generated_video
from server.library.purge import Purged, purge_expired
from server.orgs import Orgs
from server.people.directory import People
from server.people.enrol import add_person, login_link
from server.people.model import ROLES
from server.rooms.roles import Role
from server.session.room_records import ROOM_ID, check_room_video, new_room_id
from server.settings import Settings
from server.supervisor import Supervisor, die_with_supervisor, inherited_socket, worker_argv
from server.sync.audit import Actor, AuditEvent
from server.sync.backend import open_audit, open_store
from server.sync.store import RoomRecord
from server.tokens import mint, new_sub
from server.web_dist import dist_dir

WS_MAX_BYTES = (
    2 * 1024 * 1024
)  # transport cap; the room protocol's own, smaller limit answers first
DEMO_ROOM = "demo"
DEMO_COACH = "coach@demo.invalid"  # .invalid: never a real address (RFC 2606)
DEMO_TEACHER = "teacher@demo.invalid"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 8h or 2d")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * unit


def _backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="data directory (default ./data)")
    parser.add_argument(
        "--redis",
        help="distributed mode: redis://host:port/db, redis+sentinel://host:port,.../service "
        "or redis+cluster://host:port,... (default: embedded)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cocoach", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cocoach {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--worker-id", help="this worker's id (default: random)")
    serve.add_argument("--log-level", default="INFO")
    serve.add_argument(
        "--log-format", choices=logs.FORMATS, help="text (default) or json: one object a line"
    )
    _backend_flags(serve)

    token = commands.add_parser("token", help="mint a room token (JWT)")
    token.add_argument("--room", required=True)
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--name", required=True)
    token.add_argument(
        "--sub", help="the person's stable id (default: a new unique one, never the name)"
    )
    token.add_argument("--org", help="organisation (school or trust)")
    token.add_argument("--ttl", type=parse_duration, default=8 * 3600.0, help="e.g. 8h (default)")
    token.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="PERM=BOOL",
        help="widen or narrow the role, e.g. --grant talkback=true (repeatable)",
    )
    _backend_flags(token)

    room = commands.add_parser("room", help="manage rooms")
    room_commands = room.add_subparsers(dest="room_command", required=True)
    create = room_commands.add_parser("create", help="create a room; prints its id")
    create.add_argument("--title", required=True)
    create.add_argument("--id", help="choose the id (default: random)")
    create.add_argument("--org")
    create.add_argument("--framework", help="tag framework id, e.g. questioning")
    create.add_argument("--video", help="id of a video in the library (docs/videos.md)")
    create.add_argument(
        "--shared", help="comma-separated organisations of the same trust it is shared with"
    )
    _backend_flags(create)

    person = commands.add_parser("person", help="manage the people who sign in")
    person_commands = person.add_subparsers(dest="person_command", required=True)
    add = person_commands.add_parser("add", help="add a person; prints their id")
    add.add_argument("--name", required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--org", help="their school (default: the default organisation)")
    add.add_argument("--role", choices=ROLES, default="teacher", help="everyone is a teacher")
    _backend_flags(add)
    link = commands.add_parser("login-link", help="print a one-time sign-in link for a person")
    link.add_argument("--email", required=True)
    link.add_argument("--minutes", type=float, help="how long it may wait to be used")
    _backend_flags(link)

    purge = commands.add_parser(
        "purge", help="delete the videos whose retention has ended (what the server's job does)"
    )
    purge.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
    )
    _backend_flags(purge)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data=args.data,
        redis=args.redis,
        worker_id=getattr(args, "worker_id", None),
        log_format=getattr(args, "log_format", None),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(settings_from(args), args.log_level)
        if args.command == "token":
            print(token(settings_from(args).with_secrets(), args))
            return 0
        if args.command == "room" and args.room_command == "create":
            settings = settings_from(args)
            print(
                asyncio.run(
                    create_room(
                        settings,
                        args.title,
                        args.id,
                        args.org,
                        args.framework,
                        args.video,
                        tuple(s.strip() for s in (args.shared or "").split(",") if s.strip()),
                    )
                )
            )
            return 0
        if args.command == "person" and args.person_command == "add":
            added = asyncio.run(
                add_person(settings_from(args), args.name, args.email, args.org, args.role)
            )
            print(added.id)
            return 0
        if args.command == "login-link":
            print(asyncio.run(login_link(settings_from(args), args.email, args.minutes)))
            return 0
        if args.command == "purge":
            lines = asyncio.run(purge(settings_from(args), dry_run=args.dry_run))
            print("\n".join(lines))
            return 0
    except CocoachError as error:
        print(f"cocoach: {error.code}: {error.message}", file=sys.stderr)
        return 1
    return 2


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


async def _create_demo(settings: Settings) -> bool:
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


def serve(settings: Settings, log_level: str) -> int:
    """Bind the port, make the demo on a first run, and run the worker under a supervisor
    that starts it again if it dies (server/supervisor.py); or, in that child, the worker."""
    logs.configure(log_level.upper(), settings.log_format)
    inherited = inherited_socket()
    if inherited is not None:
        die_with_supervisor()
        settings = replace(settings.with_secrets(), port=inherited.getsockname()[1])
        return run_worker(settings, inherited)
    found = preflight.problems(settings, dist_dir())
    for problem in found:
        print(f"cocoach: {problem.text}", file=sys.stderr, flush=True)
    if any(problem.fatal for problem in found):
        return 2
    first_run = settings.redis is None and not (settings.data / "secret").exists()
    settings = settings.with_secrets()
    sock = _bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    settings = replace(settings, port=port)
    if first_run and asyncio.run(_create_demo(settings)):
        _print_first_run(settings, made=asyncio.run(_make_demo_lesson(settings)))
        for who, email in (("Coach", DEMO_COACH), ("Teacher", DEMO_TEACHER)):
            link = asyncio.run(login_link(settings, email, None))
            print(f"  {who} sign-in:  {link}", flush=True)
    print(f"cocoach listening on http://{_url_host(settings.host)}:{port}", flush=True)
    return Supervisor(worker_argv(), sock).run()


def run_worker(settings: Settings, sock: socket.socket) -> int:
    """One worker process: the app on uvicorn, on a socket already listening."""
    from server.app import create_app
    from server.drain import DrainingServer

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        ws_max_size=WS_MAX_BYTES,
        loop=_event_loop(settings.event_loop),
        log_config=None,
        lifespan="on",
        # The client address behind a proxy is ours to decide (`trusted_proxies`): uvicorn
        # would otherwise believe X-Forwarded-For from 127.0.0.1 by default.
        proxy_headers=False,
        # After the worker drained, what is still open (plain HTTP requests, an upload) gets
        # this long again before uvicorn cancels it.
        timeout_graceful_shutdown=max(1, round(settings.drain_seconds)),
    )
    DrainingServer(config, app, settings.drain_seconds).run(sockets=[sock])
    return 0


def _event_loop(choice: str) -> str:
    if choice not in ("auto", "uvloop", "asyncio"):
        raise SystemExit(f"COCOACH_EVENT_LOOP must be auto, uvloop or asyncio, not {choice!r}")
    return choice


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listen now, so a client that reads our "listening" line waits in the backlog until
    # the app has started instead of being refused.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _make_demo_lesson(settings: Settings) -> bool:
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


def _print_first_run(settings: Settings, *, made: bool) -> None:
    assert settings.secret is not None
    base = settings.public_url or f"http://{_url_host(settings.host)}:{settings.port}"
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


if __name__ == "__main__":
    sys.exit(main())
