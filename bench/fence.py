"""What the fence costs a room's home: a publish checked against the lease's fencing token (one
Lua call, server/sync/redis_fence.py) beside a plain PUBLISH, and a fenced state save beside a
SET, on one local Redis, one at a time as a home sends them.

    .venv/bin/python -m bench.fence --count 5000
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis.asyncio as aioredis

from bench import infra
from server.sync.keys import out_channel, state_key
from server.sync.redis_fence import RedisFence
from server.sync.redis_lease import RedisLease
from server.sync.redis_store import RedisStore

ROOM = "bench-fence"


async def timed(count: int, step: object) -> float:
    """Microseconds per call, the median of three passes of `count` calls."""
    passes = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            await step()  # type: ignore[operator]
        passes.append((time.perf_counter() - started) / count * 1e6)
    return sorted(passes)[1]


async def main_async(count: int) -> None:
    stack = infra.Stack()
    try:
        _, port = stack.redis()
        client = aioredis.Redis(port=port)
        token = await RedisLease(client).take(ROOM, "w1", 60.0)
        fence = RedisFence(client, RedisStore(client))
        frame = b"x" * 200  # a playback frame's size
        state = b"s" * 700  # a room state's size (bench/capacity.py: 712 B)
        rows = [
            ("PUBLISH", await timed(count, lambda: client.publish(out_channel(ROOM), frame))),
            (
                "fenced publish",
                await timed(
                    count, lambda: fence.publish(ROOM, "w1", token, out_channel(ROOM), frame)
                ),
            ),
            ("SET state", await timed(count, lambda: client.set(state_key(ROOM), state))),
            (
                "fenced save",
                await timed(count, lambda: fence.save_room_state(ROOM, "w1", token, state)),
            ),
        ]
        await client.aclose()
    finally:
        stack.close()
    print(f"machine: {infra.machine()}; {count} calls a pass, median of 3 passes")
    print("| call | µs per call |\n|---|---|")
    for name, micros in rows:
        print(f"| {name} | {micros:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fence", description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    asyncio.run(main_async(parser.parse_args().count))


if __name__ == "__main__":
    main()
