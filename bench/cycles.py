"""Coaching cycles' progress (issue 15, server/http/cycles.py): how fast a cycle's progress and a
teacher's progress across her cycles answer. Figures, not a test.

    .venv/bin/python -m bench.cycles            # about a minute
    .venv/bin/python -m bench.cycles --lessons 10 --notes 300 --cycles 10 --requests 100

An embedded `cocoach serve` (127.0.0.1). A teacher and a coach, added and signed in as the CLI
does (one-time links). One cycle of `--lessons` lessons, each reviewed in its own session whose
document holds `--notes` tagged notes on it (written over the y-websocket protocol in one
update per room), then `--cycles` - 1 more cycles of 3 lessons each (a term's cycles). Each
lesson is a video record of the teacher's (a tus upload begun: the record is what a cycle
needs). Then `--requests` sequential requests of each kind, after one warm-up each:
`GET /api/cycles/{id}/progress` for the big cycle (goal p95 <= 50 ms) and
`GET /api/people/{teacher}/progress` across all her cycles (goal p95 <= 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from typing import Any

import httpx
from pycrdt import Array, Map

from bench import infra
from bench.kit import cli
from bench.kit.stats import summary
from tests.video_support import tus_create
from tests.yclient import ydoc

TAGS = ("open-question", "closed-question", "probing-follow-up", "wait-time")
GOALS = {"cycle": 50.0, "person": 200.0}


def person(data: str, name: str, email: str, role: str) -> str:
    """Add a person with the CLI; a one-time sign-in link for them."""
    env = {"COCOACH_SECRET": infra.SECRET, "COCOACH_ADMIN_KEY": infra.ADMIN_KEY}
    base = [sys.executable, "-m", "server.cli"]
    common = {"check": True, "capture_output": True, "text": True, "cwd": infra.ROOT}
    subprocess.run(
        [*base, "person", "add", "--name", name, "--email", email, "--role", role, "--data", data],
        env={**_env(), **env},
        **common,  # type: ignore[arg-type]
    )
    done = subprocess.run(
        [*base, "login-link", "--email", email, "--data", data],
        env={**_env(), **env},
        **common,  # type: ignore[arg-type]
    )
    return str(done.stdout).strip()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(infra.ROOT)}


async def sign_in(client: httpx.AsyncClient, link: str) -> None:
    used = await client.post(f"/auth/link/{link.rsplit('/', 1)[1]}")
    if used.status_code != 303:
        raise RuntimeError(f"sign-in failed: {used.status_code} {used.text[:200]}")


async def notes_into(base: str, room: str, token: str, video: str, count: int, author: str) -> None:
    """`count` tagged notes on `video`, in one update."""
    rng = random.Random(room)
    async with ydoc(base, room, token) as client:
        timeline = client.doc.get("timeline", type=Map)
        with client.doc.transaction():
            for i in range(count):
                timeline[f"n{i}"] = Map(
                    {
                        "start": float(i * 2),
                        "text": f"note {i}",
                        "tags": Array([rng.choice(TAGS)]),
                        "author": author,
                        "created": time.time(),
                        "video": video,
                    }
                )
        await client.flush()
        await asyncio.sleep(0.2)


async def cycle_with_lessons(
    base: str, teacher: httpx.AsyncClient, coach_id: str, lessons: int, notes: int, me: str
) -> str:
    made = await teacher.post(
        "/api/cycles",
        json={
            "focus": "Questions reach every pupil",
            "framework": "questioning",
            "coaches": [coach_id],
        },
    )
    cycle = made.json()["id"]
    for index in range(lessons):
        url = await tus_create(
            teacher, 1000, filename=f"lesson{index}.mp4", title=f"Lesson {index}"
        )
        video = url.split("/")[3]
        session = await teacher.post(
            f"/api/cycles/{cycle}/sessions", json={"kind": "review", "video": video}
        )
        room = session.json()["room"]
        token = (await teacher.post(f"/api/rooms/{room}/token")).json()["token"]
        await notes_into(base, room, token, video, notes, me)
    return cycle


async def timed(client: httpx.AsyncClient, url: str, requests: int) -> dict[str, float]:
    started = time.perf_counter()
    answer = await client.get(url)  # the first: every session's notes read from the log
    first = time.perf_counter() - started
    answer.raise_for_status()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = await client.get(url)
        times.append(time.perf_counter() - started)
        answer.raise_for_status()
    return {**summary(times), "first_ms": 1000 * first}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print(f"machine: {infra.machine()}; cocoach at {infra.code_version()}")
    with cli.stack() as stack:
        # Forty uploads begun in a few seconds: more than a person starts, so the limit is lifted.
        server = await asyncio.to_thread(
            stack.cocoach, "w1", None, COCOACH_UPLOADS_PER_MINUTE="1000"
        )
        data = str(stack.directory / "data-w1")
        tia_link = await asyncio.to_thread(person, data, "Tia", "tia@example.org", "teacher")
        cora_link = await asyncio.to_thread(person, data, "Cora", "cora@example.org", "coach")
        async with (
            httpx.AsyncClient(base_url=server.base, timeout=60.0) as teacher,
            httpx.AsyncClient(base_url=server.base, timeout=60.0) as coach,
        ):
            await sign_in(teacher, tia_link)
            await sign_in(coach, cora_link)
            teacher_id = (await teacher.get("/api/me")).json()["id"]
            coach_id = (await coach.get("/api/me")).json()["id"]
            started = time.perf_counter()
            big = await cycle_with_lessons(
                server.base, teacher, coach_id, args.lessons, args.notes, teacher_id
            )
            for _ in range(args.cycles - 1):
                await cycle_with_lessons(server.base, teacher, coach_id, 3, args.notes, teacher_id)
            print(f"made {args.cycles} cycles in {time.perf_counter() - started:.1f} s")
            figures = (await teacher.get(f"/api/cycles/{big}/progress")).json()
            counted = sum(
                t["count"] for lesson in figures["lessons"] for t in lesson["tags"].values()
            )
            print(f"the big cycle: {len(figures['lessons'])} lessons, {counted} tagged notes")
            results = {
                "cycle": await timed(teacher, f"/api/cycles/{big}/progress", args.requests),
                "person": await timed(coach, f"/api/people/{teacher_id}/progress", args.requests),
            }
    print(
        "| request | first ms | n | p50 ms | p95 ms | max ms | goal p95 |\n"
        "|---|---|---|---|---|---|---|"
    )
    for name, label in (
        ("cycle", f"a cycle's progress ({args.lessons} lessons x {args.notes} notes)"),
        ("person", f"a teacher's progress across {args.cycles} cycles"),
    ):
        r = results[name]
        met = "met" if r["p95_ms"] <= GOALS[name] else "MISSED"
        print(
            f"| {label} | {r['first_ms']:.0f} | {r['n']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['max_ms']:.1f} | <= {GOALS[name]:.0f} ms: {met} |"
        )
    return results


if __name__ == "__main__":
    parser = cli.parser("python -m bench.cycles", __doc__)
    parser.add_argument("--lessons", type=int, default=10)
    parser.add_argument("--notes", type=int, default=300)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100)
    cli.output_options(parser, max_seconds=600.0, keep_logs=False)
    arguments = parser.parse_args()
    cli.write_json(arguments.json, cli.run(main, arguments))
