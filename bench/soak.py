"""Soak: many rooms typing for a long time on two workers, with joins and leaves.

    .venv/bin/python -m bench.soak --minutes 10 --rooms 200

Per room, a writer on worker 1 adds a note every `--interval` seconds and a reader on worker 2
receives it; every `--churn-every` seconds a tenth of the readers leave and join again, and a
room-protocol member joins and leaves too. Every minute it prints the fan-out latency (writer's
send to reader's receive, one process clock), each worker's RSS, open file descriptors and
threads, and Redis's memory: after warm-up, memory and descriptors must stay flat. Every loop
is bounded by the run's length; all traffic is to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis
import websockets
from pycrdt import Array, Doc, Map

from bench import infra
from bench.kit.stamps import note_text, split, stamped, stamps
from bench.kit.stats import percentile
from bench.yproto import YClient, YWebsocket, connect, sync_message
from server.rooms.roles import Role
from server.tokens import mint

ADAPTER = YWebsocket()
KEEP = 20  # notes a writer keeps: it deletes the one from KEEP steps ago, so content stays flat


def build_frames(room: str, author: str, count: int) -> list[tuple[bytes, bytes]]:
    """Update frames that each add a note and delete the one from KEEP steps earlier, split
    around the send-time placeholder (bench/kit/stamps.py)."""
    doc: Doc[Any] = Doc()
    timeline = doc.get("timeline", type=Map)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    frames = []
    for seq in range(count):
        with doc.transaction():
            timeline[f"n{seq:06d}"] = Map(
                {
                    "start": float(seq % 3600),
                    "text": note_text("soak", seq),
                    "tags": Array(["soak"]),
                    "author": author,
                    "created": time.time(),
                }
            )
            if seq >= KEEP:
                del timeline[f"n{seq - KEEP:06d}"]
        frames.append(split(ADAPTER.prefix(room) + sync_message(2, updates[-1])))
    return frames


@dataclass
class SoakRoom:
    id: str
    writer: YClient | None = None
    reader: YClient | None = None
    reader_since: float = 0.0  # notes sent before the reader (re)joined arrive by catch-up
    frames: list[tuple[bytes, bytes]] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def on_update(self, now: float, update: bytes, minute: list[float]) -> None:
        for seq, stamp in stamps(update):
            if seq not in self.seen and stamp >= self.reader_since:
                self.seen.add(seq)
                minute.append(now - stamp)


@dataclass
class Sample:
    minute: int
    notes: int
    p50_ms: float
    p99_ms: float
    rss_mb: list[float]
    fds: list[int]
    threads: list[int]
    redis_mb: float
    errors: int


class Soak:
    def __init__(self, args: argparse.Namespace, workers: list[infra.Proc], redis_port: int):
        self.args = args
        self.workers = workers
        self.redis = redis.Redis(port=redis_port)
        self.rooms = [SoakRoom(f"soak-{i:04d}") for i in range(args.rooms)]
        self.latencies: list[float] = []
        self.errors = 0
        self.samples: list[Sample] = []
        self.deadline = 0.0

    def token(self, room: str, sub: str, role: Role = Role.COACH) -> str:
        return mint(infra.SECRET, room=room, role=role, name=sub, sub=sub, ttl=7200)

    async def open_reader(self, room: SoakRoom) -> None:
        room.reader_since = time.perf_counter()
        room.reader = await connect(
            ADAPTER,
            self.workers[1].base,
            room.id,
            self.token(room.id, "user:reader", Role.OBSERVER),
            apply=False,
            on_update=lambda now, u: room.on_update(now, u, self.latencies),
        )

    async def open_room(self, room: SoakRoom) -> None:
        notes = int(self.args.minutes * 60 / self.args.interval) + 2
        room.frames = build_frames(room.id, "user:writer", notes)
        room.writer = await connect(
            ADAPTER, self.workers[0].base, room.id, self.token(room.id, "user:writer")
        )
        await self.open_reader(room)

    async def write(self, room: SoakRoom, offset: float) -> None:
        """One note every interval, until the run ends."""
        await asyncio.sleep(offset)
        for head, tail in room.frames:
            if time.perf_counter() >= self.deadline:
                return
            assert room.writer is not None
            try:
                await room.writer.send_frame(stamped(head, tail, time.perf_counter()))
            except websockets.ConnectionClosed:
                self.errors += 1
                return
            await asyncio.sleep(self.args.interval)

    async def churn(self) -> None:
        """Every churn period a tenth of the readers leave and join again, and a member joins
        and leaves through the room protocol."""
        rng = random.Random(7)
        while time.perf_counter() + self.args.churn_every < self.deadline:
            await asyncio.sleep(self.args.churn_every)
            for room in rng.sample(self.rooms, max(1, len(self.rooms) // 10)):
                try:
                    if room.reader is not None:
                        await room.reader.close()
                    await self.open_reader(room)
                    await self.member_visit(room)
                except (OSError, websockets.WebSocketException, TimeoutError):
                    self.errors += 1

    async def member_visit(self, room: SoakRoom) -> None:
        url = self.workers[1].base.replace("http", "ws") + f"/rooms/{room.id}/ws"
        token = self.token(room.id, "user:visitor", Role.OBSERVER)
        async with websockets.connect(f"{url}?token={token}", open_timeout=10) as ws:
            welcome = msgspec.msgpack.decode(await asyncio.wait_for(ws.recv(), 10))
            if welcome.get("type") != "welcome":
                self.errors += 1

    async def sample_every_minute(self) -> None:
        minute = 0
        while time.perf_counter() + 1 < self.deadline:
            await asyncio.sleep(min(60.0, self.deadline - time.perf_counter()))
            minute += 1
            window, self.latencies = sorted(self.latencies), []
            memory = self.redis.info("memory")
            sample = Sample(
                minute=minute,
                notes=len(window),
                p50_ms=1000 * percentile(window, 0.50),
                p99_ms=1000 * percentile(window, 0.99),
                rss_mb=[w.rss_bytes() / 2**20 for w in self.workers],
                fds=[w.fds() for w in self.workers],
                threads=[w.threads() for w in self.workers],
                redis_mb=memory["used_memory"] / 2**20,
                errors=self.errors,
            )
            self.samples.append(sample)
            print(line(sample), flush=True)

    async def run(self) -> None:
        rooms = [r.id for r in self.rooms]
        infra.create_rooms(self.workers[0].base, rooms)
        for start in range(0, len(self.rooms), 20):
            await asyncio.gather(*(self.open_room(r) for r in self.rooms[start : start + 20]))
        self.deadline = time.perf_counter() + self.args.minutes * 60
        print(HEADER, flush=True)
        writers = [
            self.write(r, self.args.interval * i / len(self.rooms))
            for i, r in enumerate(self.rooms)
        ]
        await asyncio.gather(*writers, self.churn(), self.sample_every_minute())
        for room in self.rooms:
            for client in (room.writer, room.reader):
                if client is not None:
                    await client.close()


HEADER = "min  notes   p50 ms   p99 ms   rss w1/w2 MB     fds w1/w2  threads  redis MB  errors"


def line(s: Sample) -> str:
    return (
        f"{s.minute:>3}  {s.notes:>5}  {s.p50_ms:>7.1f}  {s.p99_ms:>7.1f}  "
        f"{s.rss_mb[0]:>6.1f}/{s.rss_mb[1]:<6.1f}  {s.fds[0]:>5}/{s.fds[1]:<5}  "
        f"{s.threads[0]:>3}/{s.threads[1]:<3}  {s.redis_mb:>8.1f}  {s.errors:>6}"
    )


def verdict(samples: list[Sample]) -> list[str]:
    if len(samples) < 3:
        return ["too short to judge flatness (run at least 3 minutes)"]
    warm, last = samples[1], samples[-1]
    out = []
    for i in range(2):
        growth = last.rss_mb[i] - warm.rss_mb[i]
        out.append(
            f"worker {i + 1} RSS after warm-up: {warm.rss_mb[i]:.1f} -> "
            f"{last.rss_mb[i]:.1f} MB ({growth:+.1f} MB)"
        )
        out.append(f"worker {i + 1} fds after warm-up: {warm.fds[i]} -> {last.fds[i]}")
    out.append(f"worst minute p99: {max(s.p99_ms for s in samples):.1f} ms")
    out.append(f"client-side errors: {samples[-1].errors}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between notes")
    parser.add_argument("--churn-every", type=float, default=10.0)
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 30:
        parser.error("--minutes must be within (0, 30]")
    stack = infra.Stack()
    try:
        _, redis_port = stack.redis()
        url = f"redis://127.0.0.1:{redis_port}/0"
        workers = [stack.cocoach(f"w{i}", url) for i in (1, 2)]
        print(
            f"soak: {args.rooms} rooms, a note every {args.interval} s each, "
            f"churn every {args.churn_every} s, {args.minutes} min on {infra.machine()}"
        )
        soak = Soak(args, workers, redis_port)
        asyncio.run(soak.run())
        for text in verdict(soak.samples):
            print(text)
    finally:
        with contextlib.suppress(Exception):
            stack.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
