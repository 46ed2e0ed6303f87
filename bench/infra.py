"""Processes the benchmarks run against: Redis, cocoach workers and Hocuspocus instances.

Everything listens on 127.0.0.1 on a free port, writes its output to a file (a pipe nobody
reads would fill and stall the process), and is stopped by `Stack.close()` through the Popen
handle we started, never by name. CPU time and RSS come from /proc, so no psutil is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from server.rooms.roles import Role
from server.tokens import mint

ROOT = Path(__file__).resolve().parent.parent
HOCUSPOCUS_DIR = ROOT / "bench" / "hocuspocus"
SECRET = "bench-secret-" + "b" * 48
ADMIN_KEY = "bench-admin-key"
START_TIMEOUT = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WORKER_STARTED = "cocoach worker process "  # server/supervisor.py says so


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    base: str = ""  # http://127.0.0.1:PORT for servers

    @property
    def pid(self) -> int:
        """The process doing the work: for `cocoach serve`, the worker its supervisor started
        (the latest, should it have been restarted), not the supervisor itself."""
        started = self.log_lines(WORKER_STARTED)
        if started:
            return int(started[-1].split(WORKER_STARTED, 1)[1].split()[0])
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (fields 14 and 15 of /proc/PID/stat)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_bytes(self) -> int:
        """Resident set size now (/proc/PID/statm, in pages)."""
        return int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * PAGE

    def fds(self) -> int:
        """Open file descriptors now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        return 0

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_lines(self, *needles: str) -> list[str]:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if any(n in line for n in needles)]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class Stack:
    """Owns every process and temporary directory of one benchmark target."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cocoach-bench-")))
    procs: list[Proc] = field(default_factory=list)
    keep: bool = False

    def close(self) -> None:
        # Servers before Redis, so they do not log a storm of reconnect errors while stopping.
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        if not self.keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.directory,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _wait_line(self, proc: Proc, prefix: str) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in proc.log.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line
            if not proc.alive():
                break
            time.sleep(0.05)
        raise RuntimeError(f"{proc.name} did not start:\n{proc.log.read_text(errors='replace')}")

    # ---- the servers --------------------------------------------------------------------

    def redis(self, *extra: str, name: str = "redis", port: int = 0) -> tuple[Proc, int]:
        """A redis-server on a free loopback port (or `port`), in a directory of its own;
        `extra` are more arguments (`--replicaof`, `--cluster-enabled`, ...)."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        port = port or free_port()
        directory = self.directory / name
        directory.mkdir(parents=True, exist_ok=True)
        proc = self._spawn(
            name,
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
                *extra,
            ],
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=0.2) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError(f"redis-server did not start: {proc.log.read_text()}")
            time.sleep(0.05)

    def cocoach(
        self, worker_id: str, redis_url: str | None, data_name: str | None = None, **env: str
    ) -> Proc:
        data = self.directory / f"data-{data_name or worker_id}"
        data.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--data", str(data)]
        if redis_url is not None:
            argv += ["--redis", redis_url]
        # COCOACH_BENCH_LOG_LEVEL=INFO shows gaps, compactions and unloads while debugging.
        level = os.environ.get("COCOACH_BENCH_LOG_LEVEL", "WARNING")
        argv += ["--worker-id", worker_id, "--log-level", level]
        environ = {
            **os.environ,
            "COCOACH_SECRET": SECRET,
            "COCOACH_ADMIN_KEY": ADMIN_KEY,
            # No demo lesson: its background transcode would take CPU from what is measured.
            "COCOACH_DEMO_CLIP_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        proc = self._spawn(f"cocoach-{worker_id}", argv, environ)
        proc.base = self._wait_line(proc, "cocoach listening on ").split()[-1]
        _wait_ready(proc.base)
        return proc

    def hocuspocus(self, name: str, redis_port: int) -> Proc:
        ensure_node_modules()
        argv = [
            shutil.which("node") or "node",
            str(HOCUSPOCUS_DIR / "server.mjs"),
            "--port",
            "0",
            "--redis-host",
            "127.0.0.1",
            "--redis-port",
            str(redis_port),
            "--name",
            name,
        ]
        proc = self._spawn(name, argv, {**os.environ, "NODE_ENV": "production"})
        proc.base = self._wait_line(proc, "hocuspocus listening on ").split()[-1]
        return proc


def ensure_node_modules() -> None:
    """`npm ci` from the lock file the first time (node_modules is not committed)."""
    if (HOCUSPOCUS_DIR / "node_modules" / "@hocuspocus" / "server").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed for the Hocuspocus comparison (node >= 18)")
    print("installing Hocuspocus (npm ci in bench/hocuspocus) ...", file=sys.stderr)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HOCUSPOCUS_DIR,
        check=True,
        timeout=300,
        stdout=sys.stderr,  # stdout is the benchmark's report
    )


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/readyz", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{base} never became ready")


# ---- cocoach rooms and tokens -----------------------------------------------------------


def create_room(base: str, room: str) -> None:
    request = urllib.request.Request(
        f"{base}/api/rooms",
        data=json.dumps({"id": room, "title": f"bench {room}"}).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 201:
            raise RuntimeError(f"creating room {room}: HTTP {response.status}")


def create_rooms(base: str, rooms: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda room: create_room(base, room), rooms))


def coach_token(room: str, sub: str) -> str:
    return mint(SECRET, room=room, role=Role.COACH, name=sub, sub=sub, ttl=3600)


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat, all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def own_cpu_seconds(procs: list[Proc]) -> float:
    """CPU of this process (all threads) and of `procs` (the ones still running)."""
    return time.process_time() + sum(p.cpu_seconds() for p in procs if p.alive())


def wait_for_quiet(procs: list[Proc], limit: float, max_wait: float) -> float:
    """Wait (at most `max_wait` s) until processes other than ours use < `limit` cores for a
    second. This machine is shared with other work (test suites of other sessions); a step
    measured while they run says more about them than about the servers. Returns the other
    load of the last second sampled."""
    deadline = time.monotonic() + max_wait
    while True:
        busy0, own0, t0 = machine_busy_seconds(), own_cpu_seconds(procs), time.monotonic()
        time.sleep(1.0)
        wall = time.monotonic() - t0
        other = ((machine_busy_seconds() - busy0) - (own_cpu_seconds(procs) - own0)) / wall
        if other < limit or time.monotonic() > deadline:
            return max(0.0, other)


async def settled_rss(proc: Proc) -> int:
    """RSS once it has stopped moving (at most 5 s: a worker may still be freeing buffers)."""
    last = proc.rss_bytes()
    for _ in range(20):
        await asyncio.sleep(0.25)
        now = proc.rss_bytes()
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def code_version() -> str:
    """The commit measured, and whether server/ had uncommitted changes (read-only git)."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "server")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" + uncommitted changes in server/" if dirty else "")


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def wait_in_sync(replica_port: int) -> None:
    """Return once the replica on `replica_port` has synced with its primary."""
    import redis as sync_redis

    client = sync_redis.Redis(port=replica_port)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while client.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis replica did not sync")
            time.sleep(0.05)
    finally:
        client.close()


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def redis_cluster(stack: Stack) -> list[tuple[Proc, int]]:
    """Six redis-servers joined into a cluster of three primaries with a replica each."""
    nodes = []
    for i in range(6):
        config = stack.directory / f"redis-{i}" / "nodes.conf"
        nodes.append(
            stack.redis(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(config),
                "--cluster-node-timeout",
                "1000",
                name=f"redis-{i}",
                port=cluster_port(),
            )
        )
    cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    addresses = [f"127.0.0.1:{port}" for _, port in nodes]
    subprocess.run(
        [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT,
    )
    import redis as sync_redis

    deadline = time.monotonic() + START_TIMEOUT
    for _, port in nodes:
        client = sync_redis.Redis(port=port)
        try:
            while True:
                state = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                text = state.decode() if isinstance(state, bytes) else str(state)
                replication = client.info("replication")
                synced = replication.get("role") != "slave" or (
                    replication.get("master_link_status") == "up"
                )
                if "cluster_state:ok" in text and synced:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not come up")
                time.sleep(0.1)
        finally:
            client.close()
    return nodes
