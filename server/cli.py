"""`cocoach`: serve, mint tokens, create rooms, purge expired videos. Commands that produce
something print it alone on their last line, so scripts can take it with `tail -n 1`."""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import sys
from dataclasses import replace
from pathlib import Path

# Only what parsing the command line and supervising a worker need: `cocoach serve` stays the
# supervisor process for as long as the server runs, and it imports no media code (see
# server/supervisor.py); each command imports its own module when it runs.
from server import __version__, logs, preflight
from server.errors import CocoachError
from server.people.model import ROLES
from server.rooms.roles import Role
from server.settings import Settings
from server.supervisor import Supervisor, die_with_supervisor, inherited_socket, worker_argv
from server.web_dist import dist_dir

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
        return _command(args)
    except CocoachError as error:
        print(f"cocoach: {error.code}: {error.message}", file=sys.stderr)
        return 1


def _command(args: argparse.Namespace) -> int:
    from server.commands import create_room, purge, token
    from server.people.enrol import add_person, login_link

    if args.command == "token":
        print(token(settings_from(args).with_secrets(), args))
        return 0
    if args.command == "room" and args.room_command == "create":
        shared = tuple(s.strip() for s in (args.shared or "").split(",") if s.strip())
        room = create_room(
            settings_from(args), args.title, args.id, args.org, args.framework, args.video, shared
        )
        print(asyncio.run(room))
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
    return 2


def serve(settings: Settings, log_level: str) -> int:
    """Bind the port, make the demo on a first run, and run the worker under a supervisor
    that starts it again if it dies (server/supervisor.py); or, in that child, the worker."""
    logs.configure(log_level.upper(), settings.log_format)
    inherited = inherited_socket()
    if inherited is not None:
        die_with_supervisor()
        from server.worker_main import run_worker

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
    if first_run:
        _first_run(settings)
    print(f"cocoach listening on http://{_url_host(settings.host)}:{port}", flush=True)
    return Supervisor(worker_argv(), sock).run()


def _first_run(settings: Settings) -> None:
    from server.first_run import (
        DEMO_COACH,
        DEMO_TEACHER,
        create_demo,
        make_demo_lesson,
        print_first_run,
    )
    from server.people.enrol import login_link

    if not asyncio.run(create_demo(settings)):
        return
    base = settings.public_url or f"http://{_url_host(settings.host)}:{settings.port}"
    print_first_run(settings, base, made=asyncio.run(make_demo_lesson(settings)))
    for who, email in (("Coach", DEMO_COACH), ("Teacher", DEMO_TEACHER)):
        link = asyncio.run(login_link(settings, email, None))
        print(f"  {who} sign-in:  {link}", flush=True)


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


if __name__ == "__main__":
    sys.exit(main())
