"""CPU over a window, on a machine shared with other work: the servers' own, this process's,
and everyone else's, which is said beside every figure."""

from __future__ import annotations

import asyncio
import time

from bench import infra


class Meter:
    """CPU from now on: the servers' (utime + stime from /proc/PID/stat), this process's
    (all its threads), and everyone else's on the machine (/proc/stat minus both)."""

    def __init__(self, *servers: infra.Proc) -> None:
        self.servers = servers
        self.t0 = time.perf_counter()
        self.busy0 = infra.machine_busy_seconds()
        self.server0 = self._server_seconds()
        self.own0 = time.process_time()

    def _server_seconds(self) -> float:
        return sum(proc.cpu_seconds() for proc in self.servers)

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        server = self._server_seconds() - self.server0
        own = time.process_time() - self.own0
        other = infra.machine_busy_seconds() - self.busy0 - server - own
        return {
            "seconds": wall,
            "server_cores": server / wall,
            "bench_cores": own / wall,
            "other_cores": max(0.0, other / wall),
        }


async def quiet(procs: list[infra.Proc], max_wait: float, limit: float = 0.3) -> float:
    """Wait (at most `max_wait` s) for the machine's other work to use < `limit` cores; the
    outside load of the last second (infra.wait_for_quiet, off the event loop: the peers and
    clients keep going)."""
    return await asyncio.to_thread(infra.wait_for_quiet, procs, limit, max_wait)
