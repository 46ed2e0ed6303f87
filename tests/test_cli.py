"""The `cocoach` command line as a user runs it: real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import redis as sync_redis

from server.tokens import verify
from tests.support import SECRET, TIMEOUT, RedisServer, connect


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        env={**os.environ, **(env or {})},
    )


def cocoach(*args: str, env: dict[str, str] | None = None) -> str:
    done = run_cli(*args, env=env)
    done.check_returncode()
    return done.stdout.strip().splitlines()[-1]  # the result stands alone on the last line


async def test_first_run_creates_demo_room_and_prints_invites(tmp_path: Path) -> None:
    data = tmp_path / "data"
    room = cocoach("room", "create", "--title", "Wait time", "--data", str(data))
    token = cocoach(
        "token",
        "--room",
        room,
        "--role",
        "teacher",
        "--name",
        "Tess",
        "--ttl",
        "2h",
        "--data",
        str(data),
    )
    secret = (data / "secret").read_text().strip()
    claims = verify(secret, token, room=room)
    assert claims.role.value == "teacher" and 7100 < claims.exp - time.time() <= 7200

    # `room create` above made the secret, so this is not a first run: use a fresh directory.
    fresh = tmp_path / "fresh"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--data", str(fresh)],
            stdout=out,
            stderr=subprocess.STDOUT,
            # A short demo lesson: the first run makes it before it prints the links.
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COCOACH_DEMO_CLIP_SECONDS": "2"},
        )
    try:
        deadline = time.monotonic() + 3 * TIMEOUT
        while "cocoach listening on" not in log.read_text():
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            await asyncio.sleep(0.05)
        text = log.read_text()
        base = text.split("cocoach listening on ")[1].split()[0]
        invites = [line.split()[-1] for line in text.splitlines() if "invite:" in line]
        assert len(invites) == 2 and all(f"{base}/r/demo?token=" in link for link in invites)
        assert (fresh / "secret").exists() and (fresh / "admin_key").exists()
        coach_token = invites[0].split("token=")[1]
        async with connect(base, "demo", coach_token) as coach:
            welcome = await coach.expect("welcome")
            assert welcome["you"]["role"] == "coach" and welcome["room"]["id"] == "demo"
        assert "token=ey" not in text.split("cocoach listening on")[1], "a token reached the log"
    finally:
        server.terminate()
        server.wait(TIMEOUT)


def test_room_create_on_redis(redis: RedisServer, tmp_path: Path) -> None:
    room = cocoach(
        "room", "create", "--title", "Shared", "--redis", redis.url, "--data", str(tmp_path)
    )
    client = sync_redis.Redis.from_url(redis.url)
    try:
        assert client.get(f"cocoach:{{{room}}}:record") is not None
    finally:
        client.close()


def test_token_flags_are_checked(tmp_path: Path) -> None:
    bad = run_cli(
        "token", "--room", "r", "--role", "janitor", "--name", "x", "--data", str(tmp_path)
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_short_secret_is_refused(tmp_path: Path) -> None:
    done = run_cli(
        "token",
        "--room",
        "r",
        "--role",
        "coach",
        "--name",
        "x",
        "--data",
        str(tmp_path),
        env={"COCOACH_SECRET": "short"},
    )
    assert done.returncode == 1 and "at least 32 bytes" in done.stderr


def test_two_people_of_one_name_are_two_people(tmp_path: Path) -> None:
    """A person's id is never made from the name: authorship, edit rights and video ownership
    follow `sub`, and two coaches called Cora Coach must not share them."""
    env = {"COCOACH_SECRET": SECRET}
    made = [
        run_cli("token", "--room", "r", "--role", "coach", "--name", "Cora Coach", env=env)
        for _ in range(2)
    ]
    claims = [verify(SECRET, m.stdout.strip().splitlines()[-1], room="r") for m in made]
    assert claims[0].name == claims[1].name == "Cora Coach"
    assert claims[0].sub != claims[1].sub
    assert all("cora" not in c.sub.lower() for c in claims)
    given = run_cli(
        "token", "--room", "r", "--role", "coach", "--name", "Cora", "--sub", "staff-1", env=env
    )
    assert verify(SECRET, given.stdout.strip().splitlines()[-1], room="r").sub == "staff-1"


def test_the_supervisor_loads_no_worker_code() -> None:
    """`cocoach serve` stays the supervisor for the server's whole life: importing the CLI
    loads no aiortc, no app, no uvicorn and no Redis client (each command loads its own)."""
    listed = subprocess.run(
        [sys.executable, "-c", "import sys, server.cli; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    ).stdout.split()
    heavy = {"aiortc", "av", "uvicorn", "redis", "server.app", "server.session.worker"}
    assert heavy & set(listed) == set()
    assert "server.cli" in listed
