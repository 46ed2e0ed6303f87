"""Memory per loaded room, and the time to load a room no worker holds.

    .venv/bin/python -m bench.rooms                     # embedded (SQLite) and Redis modes
    .venv/bin/python -m bench.rooms --mode redis --rooms 20

Each room holds what a long lesson leaves: a 20,000-character plan (written in 40 paragraphs)
and 500 timeline notes (written in 10 batches), by real y-websocket clients through a
populating worker. Half the rooms are left as the writes left them (a log of entries), half
are compacted into a snapshot (the populating worker runs with COCOACH_DOC_COMPACT_AFTER=4).
Every room is read back from the document log before the populating worker stops, so what is
measured is a room in the log that no running worker holds.

Then a fresh worker starts, and for each room in turn one client connects and waits for sync
step2: the time from starting the connection to step2 is the load time (the WebSocket
handshake alone, measured on a room the worker already holds, is reported beside it). The
clients stay connected, so the rooms stay loaded, and the worker's RSS grows by the memory of
those rooms plus one connection each; a second client per room then gives the cost of a
connection alone, which is subtracted. Those clients only read, so the rooms are *cold*: the
worker keeps each one's state as encoded bytes (server/session/doc_state.py). Then each first
client adds one note, which makes its room *hot* (a pycrdt replica with the judge's watch, kept
for `doc_hot_seconds` after the last write; the benchmark sets it long enough to measure), and
the RSS step gives a room while it is being written.

RSS is what the operating system charges, but it is noisy (allocator arenas, fragmentation), so
a hot room's replica is also measured alone, built from the room's encoded state in a clean
interpreter, many times over. tracemalloc cannot see it: pycrdt's documents live in Rust (yrs)
allocations, outside Python's allocator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pycrdt import Array, Doc, Map, Text, get_update

from bench import infra
from bench.kit import cli
from bench.kit.cpu import Meter
from bench.kit.stats import summary
from bench.yproto import ADAPTERS, YClient, connect
from server.documents.rules import ChangeWatch, declare_roots
from server.sync.doclog import Loaded
from server.sync.redis_broker import RedisBroker
from server.sync.redis_doclog import RedisDocLog
from server.sync.sqlite_doclog import SqliteDocLog

PLAN_CHARS = 20_000
PLAN_PARAGRAPHS = 40
NOTES = 500
NOTE_BATCHES = 10
WARM_ROOMS = 2  # loaded before the baseline, so first-use costs (imports, caches) are not counted
ADAPTER = ADAPTERS["cocoach"]
WRITER = "bench:writer"


def plan_paragraph(i: int, size: int) -> str:
    words = (
        "Students model the problem with bar diagrams, then compare strategies in pairs; "
        "the teacher circulates, notes misconceptions and selects two solutions to discuss. "
    )
    text = f"{i + 1}. " + words * (size // len(words) + 1)
    return text[: size - 1] + "\n"


# ---- populating ---------------------------------------------------------------------------


async def populate(base: str, room: str) -> None:
    """Write the plan and the notes as an editing client would, then wait until they stand."""
    client = await connect(ADAPTER, base, room, infra.coach_token(room, WRITER))
    try:
        await asyncio.wait_for(client.synced.wait(), 20)
        updates = write_content(client.doc)
        for update in updates:
            await client.send_frame(client.update_frame(update))
        # Our own updates are not echoed; a second client proves the worker took them all.
        async with asyncio.timeout(20):
            while True:
                check = await connect(ADAPTER, base, room, infra.coach_token(room, "bench:check"))
                try:
                    await asyncio.wait_for(check.synced.wait(), 20)
                    done = _complete(check.doc)
                finally:
                    await check.close()
                if not check.denied and done:
                    break
                await asyncio.sleep(0.1)
        if client.denied:
            raise RuntimeError(f"room {room}: updates refused: {client.denied[:3]}")
    finally:
        await client.close()


def one_note(doc: Doc[Any], author: str) -> bytes:
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    doc.get("timeline", type=Map)[f"hot-{author}"] = Map(
        {"start": 1.0, "text": "hot", "tags": Array([]), "author": author, "created": 1.0}
    )
    doc.unobserve(subscription)
    return updates[0]


def _complete(doc: Doc[Any]) -> bool:
    plan = doc.get("plan", type=Text)
    timeline = doc.get("timeline", type=Map)
    return len(plan) == PLAN_CHARS and len(timeline) == NOTES


@dataclass
class LogState:
    entries: int
    snapshot: bool
    encoded: int  # bytes of the room's whole state, as one update


async def read_back(mode: str, stack: infra.Stack, redis_url: str | None, room: str) -> LogState:
    """The room as the document log holds it, rebuilt the way a loading worker does."""
    if mode == "redis":
        assert redis_url is not None
        client = aioredis.Redis.from_url(redis_url)
        try:
            loaded = await RedisDocLog(client, RedisBroker(client)).load(room)
        finally:
            await client.aclose()
    else:
        doclog = SqliteDocLog(stack.directory / "data-populate" / "documents.sqlite3")
        try:
            loaded = await doclog.load(room)
        finally:
            await doclog.close()
    doc = _rebuild(loaded)
    if not _complete(doc):
        raise RuntimeError(f"room {room} is not complete in the log")
    return LogState(len(loaded.entries), loaded.snapshot is not None, len(doc.get_update()))


def _rebuild(loaded: Loaded) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    declare_roots(doc)
    if loaded.snapshot is not None:
        doc.apply_update(loaded.snapshot)
    for entry in loaded.entries:
        doc.apply_update(entry.update)
    return doc


async def wait_in_log(
    mode: str, stack: infra.Stack, redis_url: str | None, room: str, compacted: bool
) -> LogState:
    """Poll until the populating worker has written the room (and compacted it, if asked)."""
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(RuntimeError):
                state = await read_back(mode, stack, redis_url, room)
                if not compacted or (state.snapshot and state.entries == 0):
                    return state
            await asyncio.sleep(0.2)


# ---- measuring ----------------------------------------------------------------------------


@dataclass
class ModeResult:
    mode: str
    rooms: int
    log_rooms: dict[str, Any] = field(default_factory=dict)
    snapshot_rooms: dict[str, Any] = field(default_factory=dict)
    handshake_ms: dict[str, float] = field(default_factory=dict)
    encoded_bytes: int = 0
    rss_baseline_mib: float = 0.0
    rss_per_room_with_client_kib: float = 0.0
    rss_per_client_kib: float = 0.0
    rss_per_room_kib: float = 0.0  # cold: read, not written, here
    rss_per_hot_room_kib: float = 0.0  # written to within doc_hot_seconds
    other_cores: float = 0.0  # what other processes used meanwhile (the machine is shared)
    errors: list[str] = field(default_factory=list)


async def timed_join(base: str, room: str, sub: str) -> tuple[float, YClient]:
    started = time.perf_counter()
    client = await connect(ADAPTER, base, room, infra.coach_token(room, sub))
    await asyncio.wait_for(client.synced.wait(), 20)
    assert client.synced_at is not None
    return client.synced_at - started, client


async def run_mode(mode: str, per_kind: int) -> ModeResult:
    result = ModeResult(mode, 2 * per_kind)
    stack = infra.Stack()
    clients: list[YClient] = []
    try:
        redis_url = None
        if mode == "redis":
            _, port = stack.redis()
            redis_url = f"redis://127.0.0.1:{port}/0"
        log_ids = [f"log-{i:03d}" for i in range(per_kind + WARM_ROOMS)]
        snap_ids = [f"snap-{i:03d}" for i in range(per_kind)]
        states: dict[str, LogState] = {}
        # Two populating workers, one after the other on the same store: defaults, then one
        # that compacts every room's log into a snapshot.
        for ids, env, compacted in (
            (log_ids, {"COCOACH_DOC_IDLE_SECONDS": "1"}, False),
            (snap_ids, {"COCOACH_DOC_IDLE_SECONDS": "1", "COCOACH_DOC_COMPACT_AFTER": "4"}, True),
        ):
            writer = stack.cocoach("populate", redis_url, **env)
            await asyncio.to_thread(infra.create_rooms, writer.base, ids)
            for room in ids:
                await populate(writer.base, room)
            for room in ids:
                states[room] = await wait_in_log(mode, stack, redis_url, room, compacted)
            writer.stop()
            stack.procs.remove(writer)
        result.encoded_bytes = states[snap_ids[0]].encoded
        result.log_rooms["entries"] = sorted({states[r].entries for r in log_ids})
        result.snapshot_rooms["entries"] = sorted({states[r].entries for r in snap_ids})

        # Embedded mode keeps everything in the data directory: the fresh worker shares it.
        fresh = stack.cocoach(
            "fresh", redis_url, data_name="populate", COCOACH_DOC_HOT_SECONDS="600"
        )
        for room in log_ids[:WARM_ROOMS]:
            _, client = await timed_join(fresh.base, room, "bench:warm")
            clients.append(client)
        handshakes = []
        for _ in range(10):  # a room the worker holds: the cost of connecting and syncing
            elapsed, client = await timed_join(fresh.base, log_ids[0], "bench:again")
            handshakes.append(elapsed)
            await client.close()
        result.handshake_ms = summary(handshakes)
        baseline = await infra.settled_rss(fresh)
        result.rss_baseline_mib = baseline / 2**20

        loads: dict[str, list[float]] = {"log": [], "snap": []}
        meter = Meter(*stack.procs)
        for log_room, snap_room in zip(log_ids[WARM_ROOMS:], snap_ids, strict=True):
            for kind, room in (("log", log_room), ("snap", snap_room)):
                elapsed, client = await timed_join(fresh.base, room, "bench:first")
                loads[kind].append(elapsed)
                clients.append(client)
        result.other_cores = meter.read()["other_cores"]
        result.log_rooms.update(summary(loads["log"]))
        result.snapshot_rooms.update(summary(loads["snap"]))
        loaded = await infra.settled_rss(fresh)
        measured = log_ids[WARM_ROOMS:] + snap_ids
        for room in measured:  # one at a time: the RSS step is per connection, not per burst
            _, client = await timed_join(fresh.base, room, "bench:second")
            clients.append(client)
        doubled = await infra.settled_rss(fresh)
        n = len(measured)
        result.rss_per_room_with_client_kib = (loaded - baseline) / n / 1024
        result.rss_per_client_kib = (doubled - loaded) / n / 1024
        result.rss_per_room_kib = result.rss_per_room_with_client_kib - result.rss_per_client_kib
        firsts = [c for c in clients if c.room in measured][:n]
        for client in firsts:
            await client.send_frame(client.update_frame(one_note(client.doc, "bench:first")))
        await asyncio.sleep(1.0)
        hot = await infra.settled_rss(fresh)
        result.rss_per_hot_room_kib = result.rss_per_room_kib + (hot - doubled) / n / 1024
        result.errors = [f"fresh: {line}" for line in fresh.log_lines("WARNING", "ERROR")]
        result.errors += [f"{c.room}: refused {c.denied[0]}" for c in clients if c.denied]
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        stack.close()
    return result


# ---- the replicas alone ---------------------------------------------------------------------

REPLICA_SCRIPT = textwrap.dedent(
    """
    import gc, os, sys, json
    from pycrdt import Doc
    from server.documents.rules import ChangeWatch, declare_roots

    state = open(sys.argv[1], "rb").read()
    copies, shape = int(sys.argv[2]), sys.argv[3]

    def rss():
        return int(open(f"/proc/{os.getpid()}/statm").read().split()[1]) * os.sysconf(
            "SC_PAGE_SIZE"
        )

    def room():
        # What a hot RoomDocument holds besides its bytes: the replica with its roots declared
        # and the ChangeWatch the judge reads ("doc": the replica alone).
        doc = Doc()
        declare_roots(doc)
        doc.apply_update(state)
        if shape == "doc":
            return doc
        return doc, ChangeWatch(doc)

    keep = [room() for _ in range(2)]  # warm: first-use allocations are not per room
    gc.collect()
    before = rss()
    keep += [room() for _ in range(copies)]
    gc.collect()
    after = rss()
    print(json.dumps({"per_room": (after - before) / copies}))
    """
)


def write_content(doc: Doc[Any], plan_chars: int = PLAN_CHARS, notes: int = NOTES) -> list[bytes]:
    """Write a room's plan and notes into `doc` as an editing client does: 40 paragraphs, then
    the notes in 10 transactions. Returns the updates, one per transaction."""
    plan = doc.get("plan", type=Text)
    timeline = doc.get("timeline", type=Map)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    size = plan_chars // PLAN_PARAGRAPHS
    for i in range(PLAN_PARAGRAPHS if plan_chars else 0):
        plan += plan_paragraph(i, size)
    per_batch = notes // NOTE_BATCHES
    for batch in range(NOTE_BATCHES if notes else 0):
        with doc.transaction():
            for j in range(per_batch):
                n = batch * per_batch + j
                timeline[f"note-{n:04d}"] = Map(
                    {
                        "start": 3.0 * n,
                        "end": 3.0 * n + 10,
                        "text": f"Note {n}: the pupils at table {n % 7} "
                        "switched strategy after the prompt; ask why.",
                        "tags": Array(["questioning", "pace"][: 1 + n % 2]),
                        "author": WRITER,
                        "created": 1_700_000_000.0 + n,
                    }
                )
    doc.unobserve(subscription)
    return updates


def build_state(plan_chars: int = PLAN_CHARS, notes: int = NOTES) -> bytes:
    """Room content as one update (what a snapshot holds)."""
    doc: Doc[Any] = Doc()
    doc.get("meta", type=Map)["title"] = "bench room"
    write_content(doc, plan_chars, notes)
    return doc.get_update()


def rss_per_room(state: bytes, copies: int, shape: str) -> float:
    """KiB of RSS per room, for `copies` rooms built from `state` in a clean interpreter."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(state)
        f.flush()
        out = subprocess.run(
            [sys.executable, "-c", REPLICA_SCRIPT, f.name, str(copies), shape],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=infra.ROOT,
            check=True,
        )
    return float(json.loads(out.stdout)["per_room"]) / 1024


def replica_memory(copies: int) -> dict[str, float]:
    state = build_state()
    return {
        "encoded_bytes": len(state),
        "copies": copies,
        "per_room_kib": rss_per_room(state, copies, "room"),
        # What dominates: one replica of the whole room, of the plan alone, of the notes alone.
        "one_replica_kib": rss_per_room(state, copies, "doc"),
        "plan_only_replica_kib": rss_per_room(build_state(notes=0), copies, "doc"),
        "notes_only_replica_kib": rss_per_room(build_state(plan_chars=0), copies, "doc"),
    }


async def load_breakdown(samples: int = 20) -> dict[str, float]:
    """Where a load's time goes, step by step, in this process (medians, ms): reading a
    snapshot from SQLite, building the replica with its watch (the room is seeded on it), and
    encoding the state for sync step 2 once the room is cold again."""
    state = build_state()
    with tempfile.TemporaryDirectory() as directory:
        doclog = SqliteDocLog(Path(directory) / "documents.sqlite3")
        try:
            for i in range(samples):
                await doclog.append(f"r{i}", "bench", state)
            steps: dict[str, list[float]] = {
                "read log": [],
                "build replica": [],
                "encode step2 (cold)": [],
            }
            for i in range(samples):
                t0 = time.perf_counter()
                loaded = await doclog.load(f"r{i}")
                t1 = time.perf_counter()
                doc: Doc[Any] = Doc()
                declare_roots(doc)
                doc.apply_update(loaded.entries[0].update)
                watch = ChangeWatch(doc)
                t2 = time.perf_counter()
                get_update(loaded.entries[0].update, Doc().get_state())
                t3 = time.perf_counter()
                del watch
                for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                    steps[key].append(1000 * value)
        finally:
            await doclog.close()
    return {key: sorted(values)[len(values) // 2] for key, values in steps.items()}


# ---- main -----------------------------------------------------------------------------------


def report(
    results: list[ModeResult], replicas: dict[str, float], breakdown: dict[str, float]
) -> str:
    lines = [f"machine: {infra.machine()}; cocoach at {infra.code_version()}", ""]
    lines.append(
        "| mode | rooms | log entries per room | load p50 ms | load p95 ms | load max ms "
        "| snapshot rooms: load p50 ms | p95 ms | max ms | connect+sync to a held room p50 ms "
        "| RSS per room, 1 client (KiB) | RSS per extra client (KiB) | RSS per room (KiB) "
        "| RSS per room being written (KiB) | other cores during loads |"
    )
    lines.append("|" + "---|" * 15)
    for r in results:
        lg, sn, hs = r.log_rooms, r.snapshot_rooms, r.handshake_ms
        lines.append(
            f"| {r.mode} | {r.rooms} | {lg['entries']} | {lg['p50_ms']:.1f} | {lg['p95_ms']:.1f} "
            f"| {lg['max_ms']:.1f} | {sn['p50_ms']:.1f} | {sn['p95_ms']:.1f} "
            f"| {sn['max_ms']:.1f} | {hs['p50_ms']:.1f} "
            f"| {r.rss_per_room_with_client_kib:.0f} | {r.rss_per_client_kib:.0f} "
            f"| {r.rss_per_room_kib:.0f} | {r.rss_per_hot_room_kib:.0f} | {r.other_cores:.2f} |"
        )
    lines.append("")
    lines.append(
        f"a hot room's replica alone (doc + ChangeWatch, {replicas['copies']} rooms in a clean "
        f"interpreter): {replicas['per_room_kib']:.0f} KiB per room; encoded state (a cold room) "
        f"{replicas['encoded_bytes'] / 1024:.0f} KiB; one replica {replicas['one_replica_kib']:.0f}"
        f" KiB, of which the plan alone {replicas['plan_only_replica_kib']:.0f} KiB and the "
        f"500 notes alone {replicas['notes_only_replica_kib']:.0f} KiB"
    )
    lines.append(
        "load steps in-process (median ms): "
        + ", ".join(f"{k} {v:.1f}" for k, v in breakdown.items())
    )
    for r in results:
        worst = max(r.log_rooms["p95_ms"], r.snapshot_rooms["p95_ms"])
        lines.append(
            f"{r.mode}: goal <= 1 MiB per loaded room: "
            f"{'met' if r.rss_per_room_kib <= 1024 else 'MISSED'} "
            f"(RSS {r.rss_per_room_kib:.0f} KiB; being written: "
            f"{'met' if r.rss_per_hot_room_kib <= 1024 else 'MISSED'}, "
            f"{r.rss_per_hot_room_kib:.0f} KiB); goal load <= 20 ms: "
            f"{'met' if worst <= 20 else 'MISSED'} (worst p95 {worst:.1f} ms)"
        )
        lines.extend(f"  {r.mode}: {e}" for e in r.errors[:5])
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    modes = ["embedded", "redis"] if args.mode == "both" else [args.mode]
    results = []
    for mode in modes:
        result = await run_mode(mode, args.rooms)
        print(f"{mode}: {json.dumps(asdict(result))}", file=sys.stderr, flush=True)
        results.append(result)
    replicas = await asyncio.to_thread(replica_memory, args.copies)
    breakdown = await load_breakdown()
    print(report(results, replicas, breakdown))
    return {
        "load_breakdown_ms": breakdown,
        "machine": infra.machine(),
        "code": infra.code_version(),
        "modes": [asdict(r) for r in results],
        "replicas": replicas,
    }


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("python -m bench.rooms", __doc__)
    parser.add_argument("--mode", choices=["embedded", "redis", "both"], default="both")
    parser.add_argument("--rooms", type=int, default=20, help="rooms of each kind (log, snapshot)")
    parser.add_argument(
        "--copies", type=int, default=50, help="rooms for the replicas-alone figure"
    )
    cli.output_options(parser, max_seconds=600.0, keep_logs=False)
    args = parser.parse_args(argv)
    cli.write_json(args.json, cli.run(main_async, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
