"""Redis memory per coaching room, by key kind: the figures for sizing a Redis (or a Redis
Cluster node) in rooms.

    .venv/bin/python -m bench.capacity                  # 20 rooms: 10 log rooms, 10 snapshot
    .venv/bin/python -m bench.capacity --rooms 40 --json capacity.json

One Redis and one cocoach worker on it (COCOACH_DOC_IDLE_SECONDS=1). Each room holds what a
long lesson leaves, written as bench/rooms.py writes it (`bench.rooms.populate`: a
20,000-character plan and 500 timeline notes by a real y-websocket client). Half the rooms are
populated by that worker, with default settings, so their document stays a log of entries; the
other half by a second worker with COCOACH_DOC_COMPACT_AFTER=4, so their log is folded into a
snapshot (that worker is stopped once every room of its half stands compacted in the log).

Each room is then live: a coach and a teacher join it over the room protocol and wait for their
`welcome`, so the room has a home (lease, fence token, persisted state). Each room is given a
typical talk record as well: 300 stretches of talk, written *directly* into Redis through
`RedisStore.append_talk` in the encoding the server writes (a msgpack TalkEntry), not measured
from speech.

With the members still connected, every key of every room is measured with
`MEMORY USAGE key SAMPLES 0` and grouped by kind (what follows `cocoach:{room}:`); the global
keys are measured once. Beside that, Redis's own view: the growth of `used_memory` over the
run, per room, which also holds what no key shows (pub/sub subscriptions of the room's
channels, the keyspace's hash tables, client buffers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis
import websockets

from bench import infra
from bench.kit import cli
from bench.rooms import populate, wait_in_log
from server.rooms.roles import Role
from server.session.talk_record import TalkEntry
from server.sync.redis_store import RedisStore
from server.tokens import mint, new_sub

TALK_STRETCHES = 300
JOIN_TIMEOUT = 20.0
ROOM_KEY = re.compile(r"^cocoach:\{(?P<room>[^}]*)\}:(?P<kind>.+)$")
COMMAND = "python -m bench.capacity"


# ---- the room's members --------------------------------------------------------------------


@dataclass
class Member:
    """A room-protocol client (MessagePack frames), read continually so it never stalls."""

    room: str
    role: Role
    ws: websockets.ClientConnection
    welcome: dict[str, Any] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    async def drain(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _ in self.ws:
                pass

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)


def member_token(room: str, role: Role, name: str, sub: str) -> str:
    """As bench/infra.py's coach_token (same secret, same claims), in any role."""
    return mint(infra.SECRET, room=room, role=role, name=name, sub=sub, ttl=3600)


async def join(base: str, room: str, role: Role, name: str, sub: str) -> Member:
    token = member_token(room, role, name, sub)
    url = f"{base.replace('http', 'ws', 1)}/rooms/{room}/ws?token={token}"
    ws = await websockets.connect(url, max_size=None, open_timeout=JOIN_TIMEOUT)
    member = Member(room, role, ws)
    try:
        async with asyncio.timeout(JOIN_TIMEOUT):
            while True:
                data = await ws.recv()
                if not isinstance(data, bytes):
                    continue
                message = msgspec.msgpack.decode(data)
                if isinstance(message, dict) and message.get("type") == "welcome":
                    member.welcome = message
                    break
                if isinstance(message, dict) and message.get("type") == "error":
                    raise RuntimeError(f"room {room}: {role} refused: {message}")
    except BaseException:
        await member.close()
        raise
    member.reader = asyncio.create_task(member.drain())
    return member


# ---- the talk record -------------------------------------------------------------------------


def talk_record(room_index: int, people: list[tuple[str, str, Role]]) -> list[bytes]:
    """300 stretches of talk of a lesson as the server stores them: who (sub, name, role),
    when (server time, s) and the lesson moment on screen when it began."""
    rng = random.Random(room_index)
    lesson_started = 1_750_000_000.0 + 3600 * room_index + rng.uniform(0, 1)
    at = lesson_started + rng.uniform(5, 30)
    stretches: list[bytes] = []
    for _ in range(TALK_STRETCHES):
        sub, name, role = people[0] if rng.random() < 0.6 else people[1]
        start = at
        end = start + rng.uniform(1.0, 25.0)
        lesson_at = round(start - lesson_started, 2)
        entry = TalkEntry(sub, name, role.value, start, end, lesson_at)
        stretches.append(msgspec.msgpack.encode(entry))
        at = end + rng.uniform(0.3, 6.0)
    return stretches


# ---- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    rooms: int
    log_rooms: int
    snapshot_rooms: int
    redis: str = ""
    # kind -> {"log": mean bytes per log room, "snapshot": ..., "all": ..., "present": n}
    kinds: dict[str, dict[str, Any]] = field(default_factory=dict)
    total_log_room: float = 0.0
    total_snapshot_room: float = 0.0
    total_room: float = 0.0
    doc_log_entries: dict[str, list[int]] = field(default_factory=dict)
    talk_entry_bytes: float = 0.0  # mean encoded TalkEntry
    used_memory_before: int = 0
    used_memory_after: int = 0
    used_memory_per_room: float = 0.0
    dataset_per_room: float = 0.0  # used_memory_dataset's growth, per room
    global_growth: int = 0  # what the global keys grew by over the run
    used_memory_per_room_without_globals: float = 0.0
    global_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: int = 0
    errors: list[str] = field(default_factory=list)


async def memory_info(client: aioredis.Redis) -> dict[str, Any]:
    return dict(await client.info("memory"))


async def settled_used_memory(client: aioredis.Redis) -> dict[str, Any]:
    """INFO memory once used_memory has stopped moving (at most ~3 s)."""
    last = await memory_info(client)
    for _ in range(12):
        await asyncio.sleep(0.25)
        now = await memory_info(client)
        if abs(int(now["used_memory"]) - int(last["used_memory"])) < 4096:
            return now
        last = now
    return last


async def key_sizes(client: aioredis.Redis) -> dict[str, tuple[int, str]]:
    """Every cocoach key: (MEMORY USAGE ... SAMPLES 0, type)."""
    sizes: dict[str, tuple[int, str]] = {}
    async for raw in client.scan_iter(match="cocoach:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        usage = await client.memory_usage(key, samples=0)  # MEMORY USAGE key SAMPLES 0
        if usage is None:  # gone meanwhile (a lease that lapsed)
            continue
        kind = await client.type(key)
        sizes[key] = (int(usage), kind.decode() if isinstance(kind, bytes) else str(kind))
    return sizes


def global_of(sizes: dict[str, tuple[int, str]], rooms: set[str]) -> dict[str, tuple[int, str]]:
    return {
        key: value
        for key, value in sizes.items()
        if not ((m := ROOM_KEY.match(key)) and m["room"] in rooms)
    }


async def run(args: argparse.Namespace) -> Result:
    per_kind = max(1, args.rooms // 2)
    log_ids = [f"log-{i:03d}" for i in range(per_kind)]
    snap_ids = [f"snap-{i:03d}" for i in range(per_kind)]
    rooms = log_ids + snap_ids
    result = Result(len(rooms), len(log_ids), len(snap_ids))
    members: list[Member] = []
    with cli.stack(args.keep_logs) as stack:
        _, port = stack.redis()
        redis_url = f"redis://127.0.0.1:{port}/0"
        client = aioredis.Redis.from_url(redis_url)
        try:
            server_info = await client.info("server")
            result.redis = f"Redis {server_info['redis_version']}"
            main = stack.cocoach("main", redis_url, COCOACH_DOC_IDLE_SECONDS="1")
            before = await settled_used_memory(client)
            result.used_memory_before = int(before["used_memory"])
            result.redis += f", {before.get('mem_allocator', '?')}"
            globals_before = global_of(await key_sizes(client), set(rooms))

            # The documents, as bench/rooms.py's run_mode writes them: a log, then a snapshot.
            compacting = stack.cocoach(
                "compacting",
                redis_url,
                COCOACH_DOC_IDLE_SECONDS="1",
                COCOACH_DOC_COMPACT_AFTER="4",
            )
            entries: dict[str, int] = {}
            for writer, ids, compacted in ((main, log_ids, False), (compacting, snap_ids, True)):
                await asyncio.to_thread(infra.create_rooms, writer.base, ids)
                for room in ids:
                    await populate(writer.base, room)
                for room in ids:
                    state = await wait_in_log("redis", stack, redis_url, room, compacted)
                    entries[room] = state.entries
            result.errors += [f"compacting: {x}" for x in compacting.log_lines("ERROR")]
            compacting.stop()
            stack.procs.remove(compacting)

            # The talk record, written directly (what the server's home writes per stretch).
            store = RedisStore(client)
            talk_sizes: list[int] = []
            for i, room in enumerate(rooms):
                people = [
                    (new_sub(), "Cora Coach", Role.COACH),
                    (new_sub(), "Tess Teacher", Role.TEACHER),
                ]
                for data in talk_record(i, people):
                    if not await store.append_talk(room, data):
                        raise RuntimeError(f"room {room}: talk record refused a stretch")
                    talk_sizes.append(len(data))
            result.talk_entry_bytes = sum(talk_sizes) / len(talk_sizes)

            # The sessions: a coach and a teacher in every room, so every room has its home.
            for room in rooms:
                for role, name in ((Role.COACH, "Cora Coach"), (Role.TEACHER, "Tess Teacher")):
                    sub = f"bench:{role.value}:{room}"
                    members.append(await join(main.base, room, role, name, sub))
            result.members = len(members)
            await asyncio.sleep(1.0)  # the homes' first writes and lease renewals

            # Measure, members still connected.
            after = await settled_used_memory(client)
            sizes = await key_sizes(client)
            result.used_memory_after = int(after["used_memory"])
            for room in log_ids:
                entries[room] = int(await client.xlen(f"cocoach:{{{room}}}:doc:log"))
            for room in snap_ids:
                entries[room] = int(await client.xlen(f"cocoach:{{{room}}}:doc:log"))
            result.doc_log_entries = {
                "log": sorted({entries[r] for r in log_ids}),
                "snapshot": sorted({entries[r] for r in snap_ids}),
            }
            summarise(result, sizes, log_ids, snap_ids)
            dataset = int(after["used_memory_dataset"]) - int(before["used_memory_dataset"])
            result.dataset_per_room = dataset / len(rooms)
            growth = result.used_memory_after - result.used_memory_before
            result.used_memory_per_room = growth / len(rooms)
            globals_after = global_of(sizes, set(rooms))
            result.global_growth = sum(v for v, _ in globals_after.values()) - sum(
                v for v, _ in globals_before.values()
            )
            result.used_memory_per_room_without_globals = (growth - result.global_growth) / len(
                rooms
            )
            result.global_keys = {
                key: {
                    "type": kind,
                    "bytes": usage,
                    "before": globals_before.get(key, (0, ""))[0],
                }
                for key, (usage, kind) in sorted(globals_after.items())
            }
            result.errors += [f"main: {line}" for line in main.log_lines("ERROR")]
        finally:
            await asyncio.gather(*(m.close() for m in members))
            await client.aclose()
    return result


def summarise(
    result: Result, sizes: dict[str, tuple[int, str]], log_ids: list[str], snap_ids: list[str]
) -> None:
    per_room: dict[str, dict[str, int]] = {room: {} for room in log_ids + snap_ids}
    types: dict[str, str] = {}
    for key, (usage, kind_type) in sizes.items():
        m = ROOM_KEY.match(key)
        if m and m["room"] in per_room:
            per_room[m["room"]][m["kind"]] = usage
            types[m["kind"]] = kind_type
    kinds = sorted({kind for room in per_room.values() for kind in room})
    for kind in kinds:
        log = [per_room[r].get(kind, 0) for r in log_ids]
        snap = [per_room[r].get(kind, 0) for r in snap_ids]
        both = log + snap
        result.kinds[kind] = {
            "type": types[kind],
            "log": sum(log) / len(log),
            "snapshot": sum(snap) / len(snap),
            "all": sum(both) / len(both),
            "present": sum(1 for r in per_room.values() if kind in r),
        }
    totals = {room: sum(parts.values()) for room, parts in per_room.items()}
    result.total_log_room = sum(totals[r] for r in log_ids) / len(log_ids)
    result.total_snapshot_room = sum(totals[r] for r in snap_ids) / len(snap_ids)
    result.total_room = sum(totals.values()) / len(totals)


# ---- the report ------------------------------------------------------------------------------


def kib(n: float) -> str:
    return f"{n / 1024:,.1f}"


def report(r: Result, command: str, seconds: float) -> str:
    lines = [
        f"command: {command}",
        f"machine: {infra.machine()}; {r.redis}; cocoach at {infra.code_version()}; "
        f"took {seconds:.0f} s",
        f"{r.rooms} rooms ({r.log_rooms} log rooms, {r.snapshot_rooms} snapshot rooms), each "
        f"with a 20,000-character plan and 500 notes written by a y-websocket client, "
        f"{r.members // max(1, r.rooms)} members connected per room (coach, teacher) and "
        f"{TALK_STRETCHES} stretches of talk (written directly into Redis with "
        f"RedisStore.append_talk, not spoken; {r.talk_entry_bytes:.0f} B each encoded)",
        f"doc:log entries per room: log rooms {r.doc_log_entries.get('log')}, "
        f"snapshot rooms {r.doc_log_entries.get('snapshot')}",
        "",
        "Per room, MEMORY USAGE key SAMPLES 0 (mean bytes over the rooms of each kind; "
        "a room without the key counts 0):",
        "",
        "| key `cocoach:{room}:...` | type | log room (B) | snapshot room (B) "
        "| all rooms (B) | rooms with it |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, k in r.kinds.items():
        lines.append(
            f"| `{kind}` | {k['type']} | {k['log']:,.0f} | {k['snapshot']:,.0f} "
            f"| {k['all']:,.0f} | {k['present']:.0f}/{r.rooms} |"
        )
    lines.append(
        f"| **total per room** | | **{r.total_log_room:,.0f}** "
        f"| **{r.total_snapshot_room:,.0f}** | **{r.total_room:,.0f}** | |"
    )
    lines += [
        "",
        "Redis's own view (INFO memory), members still connected:",
        "",
        "| figure | bytes | KiB |",
        "|---|---:|---:|",
        f"| used_memory before (Redis + 1 idle worker) | {r.used_memory_before:,} "
        f"| {kib(r.used_memory_before)} |",
        f"| used_memory after | {r.used_memory_after:,} | {kib(r.used_memory_after)} |",
        f"| used_memory growth per room | {r.used_memory_per_room:,.0f} "
        f"| {kib(r.used_memory_per_room)} |",
        f"| ... less the global keys' growth ({r.global_growth:,} B in all), per room "
        f"| {r.used_memory_per_room_without_globals:,.0f} "
        f"| {kib(r.used_memory_per_room_without_globals)} |",
        f"| used_memory_dataset growth per room | {r.dataset_per_room:,.0f} "
        f"| {kib(r.dataset_per_room)} |",
        "",
        f"So 1 GiB of used_memory holds about {2**30 / max(1.0, r.used_memory_per_room):,.0f} "
        f"such rooms (by the growth per room; {2**30 / max(1.0, r.total_room):,.0f} by the "
        "keys' sizes alone), before replication buffers, fragmentation and an AOF rewrite's "
        "copy-on-write.",
        "",
        "Global keys (once per deployment, not per room), at the end of the run:",
        "",
        "| key | type | bytes | bytes before the rooms |",
        "|---|---|---:|---:|",
    ]
    for key, g in r.global_keys.items():
        lines.append(f"| `{key}` | {g['type']} | {g['bytes']:,} | {g['before']:,} |")
    if not r.global_keys:
        lines.append("| (none) | | | |")
    lines.append("")
    if r.errors:
        lines.append("errors logged:")
        lines.extend(f"  {e}" for e in r.errors[:10])
    else:
        lines.append("no errors logged by the workers")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    result = await run(args)
    command = f".venv/bin/{COMMAND} " + " ".join(sys.argv[1:])
    print(report(result, command.strip(), time.monotonic() - started))
    return {
        "command": command.strip(),
        "machine": infra.machine(),
        "code": infra.code_version(),
        "talk_record_written_directly": True,
        **asdict(result),
    }


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(COMMAND, __doc__)
    parser.add_argument(
        "--rooms", type=int, default=20, help="rooms in all: half log rooms, half snapshot rooms"
    )
    cli.output_options(parser, max_seconds=300.0)
    args = parser.parse_args(argv)
    if args.rooms < 2:
        parser.error("--rooms must be at least 2 (one of each kind)")
    cli.write_json(args.json, cli.run(main_async, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
