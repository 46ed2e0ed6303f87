"""Test helpers: real servers on port 0, real Redis, real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvicorn
import websockets

from bench.infra import cluster_port
from server.app import create_app
from server.rooms.roles import Role
from server.settings import Settings
from server.tokens import mint

# Every timeout in the tests scales with this one constant (slow CI: COCOACH_TEST_SLOWNESS=3).
SLOWNESS = float(os.environ.get("COCOACH_TEST_SLOWNESS", "1"))
TIMEOUT = 5.0 * SLOWNESS
SECRET = "test-secret-" + "s" * 64  # long enough for HS512 too, so that case fails on the algorithm
ADMIN_KEY = "test-admin-key"


async def until(check: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Wait (bounded) until `check()` is true; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(
    room: str,
    role: Role | str = Role.COACH,
    name: str = "Ann",
    *,
    secret: str = SECRET,
    ttl: float = 3600,
    sub: str | None = None,
    **extra: Any,
) -> str:
    return mint(
        secret,
        room=room,
        role=Role(role),
        name=name,
        sub=sub or f"user:{name.lower()}",
        ttl=ttl,
        **extra,
    )


class Client:
    """A room-protocol client over a real WebSocket."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}

    @property
    def id(self) -> str:
        return str(self.welcome["you"]["id"])

    async def send(self, **message: Any) -> None:
        await self.ws.send(msgspec.msgpack.encode(message))

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, bytes), "server frames are binary"
        message = msgspec.msgpack.decode(data)
        assert isinstance(message, dict)
        return message

    async def expect(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next frame of type `kind` matching `fields`, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind} {fields} within {timeout} s")
            message = await self.recv(remaining)
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message

    async def silent(self, seconds: float = 0.3) -> None:
        """Assert nothing arrives for a while."""
        with contextlib.suppress(TimeoutError):
            message = await self.recv(seconds)
            raise AssertionError(f"unexpected frame {message}")

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Wait for the server to close us; the close code and reason."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(websockets.ConnectionClosed):
            while time.monotonic() < deadline:
                await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())
        assert self.ws.close_code is not None, "connection still open"
        return self.ws.close_code, self.ws.close_reason or ""

    async def close(self) -> None:
        await self.ws.close()


@contextlib.asynccontextmanager
async def connect(base: str, room: str, tok: str | None, **kw: Any) -> AsyncIterator[Client]:
    url = f"{base.replace('http', 'ws', 1)}/rooms/{room}/ws"
    if tok is not None:
        url += f"?token={tok}"
    async with websockets.connect(url, max_size=None, **kw) as ws:
        yield Client(ws)


@contextlib.asynccontextmanager
async def join(
    base: str, room: str, role: Role | str = "coach", name: str = "Ann"
) -> AsyncIterator[Client]:
    async with connect(base, room, token(room, role, name)) as client:
        client.welcome = await client.expect("welcome")
        yield client


@contextlib.asynccontextmanager
async def rejoin(
    base: str, room: str, role: Role | str, name: str, timeout: float = 4 * TIMEOUT
) -> AsyncIterator[Client]:
    """Join as a client told to reconnect does: again and again (bounded) until welcomed."""
    deadline = time.monotonic() + timeout
    while True:
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(join(base, room, role, name))
            break
        except (OSError, websockets.ConnectionClosed, AssertionError, TimeoutError):
            await stack.aclose()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    async with stack:
        yield client


@dataclass
class Running:
    base: str
    settings: Settings
    server: uvicorn.Server


@contextlib.asynccontextmanager
async def serve_in_process(
    settings: Settings, sock: socket.socket | None = None
) -> AsyncIterator[Running]:
    """A real uvicorn server on port 0 in the test's own event loop; on `sock` if given (bound
    already, so that its address can be in the settings: an identity provider's redirect)."""
    config = uvicorn.Config(
        create_app(settings),
        ws="websockets-sansio",
        ws_max_size=2 * 1024 * 1024,
        log_config=None,
        lifespan="on",
        # The client address behind a proxy is ours to decide (`trusted_proxies`): uvicorn
        # would otherwise believe X-Forwarded-For from 127.0.0.1 by default.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + TIMEOUT
    while not server.started:
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "server did not start"
        await asyncio.sleep(0.01)
    try:
        yield Running(f"http://127.0.0.1:{port}", settings, server)
    finally:
        server.should_exit = True
        # Stopping drains the worker (its document writes, its audit batch), which a loaded
        # machine slows down.
        await asyncio.wait_for(task, 3 * TIMEOUT)
        sock.close()


def make_settings(data: Path, **overrides: Any) -> Settings:
    return Settings(data=data, secret=SECRET, admin_key=ADMIN_KEY, **overrides)


# ---- real Redis ---------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    appendonly: bool = False
    extra: tuple[str, ...] = ()  # more redis-server arguments (a replica's `--replicaof`, ...)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def sync_client(self) -> Any:
        import redis as sync_redis

        return sync_redis.Redis.from_url(self.url)

    def async_client(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(self.url)

    def pause_writes(self, milliseconds: int) -> None:
        """CLIENT PAUSE ... WRITE: writes wait, as on a stalled Redis."""
        client = self.sync_client()
        try:
            client.execute_command("CLIENT", "PAUSE", str(milliseconds), "WRITE")
        finally:
            client.close()

    def unpause(self) -> None:
        client = self.sync_client()
        try:
            client.execute_command("CLIENT", "UNPAUSE")
        finally:
            client.close()

    def stop(self) -> None:
        self.process.kill()  # a crash, not a clean shutdown: AOF alone must keep the data
        self.process.wait(TIMEOUT)

    def start(self) -> None:
        self.process = _spawn_redis(self.port, self.directory, self.appendonly, self.extra)


def _spawn_redis(
    port: int, directory: Path, appendonly: bool, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary, (
        "redis-server is not installed: .ci/run installs it (apt-get install redis-server)"
    )
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(directory),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return _until_ours(process, port)
    except AssertionError:
        process.kill()
        process.wait()
        raise


def _until_ours(process: subprocess.Popen[bytes], port: int) -> subprocess.Popen[bytes]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        # Ours, not another test process's that took the port first (the suite runs on
        # several processes): a Redis that lost the race exits, and the one answering is not it.
        assert process.poll() is None, f"redis-server could not listen on {port}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"INFO server\r\n")
                answer = s.recv(65536)
                if answer.startswith(b"$"):
                    assert f"process_id:{process.pid}\r\n".encode() in answer, (
                        f"another redis-server answers on {port}"
                    )
                    return process
        except OSError:
            pass
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)


@contextlib.contextmanager
def redis_server(appendonly: bool = False, extra: tuple[str, ...] = ()) -> Iterator[RedisServer]:
    directory = Path(tempfile.mkdtemp(prefix="cocoach-redis-"))
    for attempt in range(5):
        port = free_port()
        try:
            process = _spawn_redis(port, directory, appendonly, extra)
            break
        except AssertionError:
            if attempt == 4:
                raise
    server = RedisServer(port, process, directory, appendonly, extra)
    try:
        yield server
    finally:
        server.process.kill()
        server.process.wait()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def replica_of(primary: RedisServer) -> Iterator[RedisServer]:
    """A redis-server replicating `primary`, returned once it is in sync."""
    with redis_server(extra=("--replicaof", "127.0.0.1", str(primary.port))) as replica:
        wait_in_sync(replica)
        yield replica


def wait_in_sync(replica: RedisServer) -> None:
    import redis as sync_redis

    client = sync_redis.Redis.from_url(replica.url)
    try:
        deadline = time.monotonic() + TIMEOUT
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
    finally:
        client.close()


@dataclass
class RedisClusterServers:
    """A Redis Cluster of three primaries, each with one replica, on loopback."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def sync_client(self) -> Any:
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in self.nodes])

    def async_client(self) -> Any:
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in self.nodes])

    def _on_all(self, *command: str) -> None:
        for node in self.nodes:
            client = node.sync_client()
            try:
                client.execute_command(*command)
            finally:
                client.close()

    def pause_writes(self, milliseconds: int) -> None:
        self._on_all("CLIENT", "PAUSE", str(milliseconds), "WRITE")

    def unpause(self) -> None:
        self._on_all("CLIENT", "UNPAUSE")

    def primary_of(self, key: str) -> RedisServer:
        """The node that owns `key`'s slot now."""
        alive = next(n for n in self.nodes if n.process.poll() is None)
        client = alive.sync_client()
        try:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_replicas in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise AssertionError(f"no node owns the slot of {key}")

    def wait_ok(self, timeout: float = 3 * TIMEOUT) -> None:
        """Until every live node says the cluster is ok, and every replica is in sync."""
        import redis as sync_redis

        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.nodes:
                if node.process.poll() is not None:
                    continue
                client = node.sync_client()
                try:
                    info = client.execute_command("CLUSTER", "INFO")
                    text = info.decode() if isinstance(info, bytes) else str(info)
                    replication = client.info("replication")
                    synced = (
                        replication.get("role") != "slave"
                        or replication.get("master_link_status") == "up"
                    )
                    states.append("cluster_state:ok" in text and synced)
                except sync_redis.RedisError:
                    states.append(False)
                finally:
                    client.close()
            if states and all(states):
                return
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.1)


@contextlib.contextmanager
def redis_cluster() -> Iterator[RedisClusterServers]:
    """Six redis-servers (`--cluster-enabled yes`), joined with `redis-cli --cluster create`
    into three primaries and three replicas; a primary that stops answering for 1 s is
    replaced by its replica."""
    cli = shutil.which("redis-cli")
    assert cli, "redis-cli is not installed: .ci/run installs it (redis-tools)"
    with contextlib.ExitStack() as stack:
        nodes = []
        for _ in range(6):
            directory = Path(tempfile.mkdtemp(prefix="cocoach-cluster-"))
            stack.callback(shutil.rmtree, directory, True)
            port = cluster_port()
            extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(directory / "nodes.conf"),
                "--cluster-node-timeout",
                "1000",
            )
            process = _spawn_redis(port, directory, False, extra)
            node = RedisServer(port, process, directory, False, extra)
            stack.callback(_kill, node)
            nodes.append(node)
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=3 * TIMEOUT,
        )
        servers = RedisClusterServers(nodes)
        servers.wait_ok()
        yield servers


def _kill(node: RedisServer) -> None:
    if node.process.poll() is None:
        node.process.kill()
    node.process.wait()


@pytest.fixture(name="redis", params=["redis", "cluster"])
def redis_or_cluster(
    request: pytest.FixtureRequest, redis: RedisServer
) -> RedisServer | RedisClusterServers:
    """Overrides the run's `redis` in a test module that imports it: each test there runs on
    the run's one Redis and on its Redis Cluster."""
    return redis if request.param == "redis" else request.getfixturevalue("cluster")


@dataclass
class Sentinels:
    """Redis Sentinels watching one primary as `service`."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]]
    service: str = "cocoach"

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel names it."""
        import redis as sync_redis

        client = sync_redis.Redis(port=self.ports[0])
        try:
            address = client.execute_command("SENTINEL", "get-master-addr-by-name", self.service)
            return None if address is None else int(address[1])
        finally:
            client.close()


@contextlib.contextmanager
def sentinels(primary: RedisServer, count: int = 3) -> Iterator[Sentinels]:
    """`count` sentinels on free loopback ports, quorum 2, that call the primary down after
    1 s; returned once they all watch it and know one another (needed to fail over)."""
    import redis as sync_redis

    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: .ci/run installs it"
    directory = Path(tempfile.mkdtemp(prefix="cocoach-sentinel-"))
    ports, processes = [], []
    try:
        for i in range(count):
            port = free_port()
            config = directory / f"sentinel-{i}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor cocoach 127.0.0.1 {primary.port} 2\n"
                "sentinel down-after-milliseconds cocoach 1000\n"
                "sentinel failover-timeout cocoach 5000\n"
            )
            processes.append(
                subprocess.Popen(
                    [binary, str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            ports.append(port)
        deadline = time.monotonic() + 3 * TIMEOUT
        for port in ports:
            client = sync_redis.Redis(port=port)
            try:
                while True:
                    with contextlib.suppress(sync_redis.RedisError):
                        known = client.execute_command("SENTINEL", "sentinels", "cocoach")
                        if len(known) >= count - 1:
                            break
                    assert time.monotonic() < deadline, "the sentinels did not find each other"
                    time.sleep(0.1)
            finally:
                client.close()
        yield Sentinels(ports, processes)
    finally:
        for process in processes:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


# ---- worker processes ---------------------------------------------------------------------


@dataclass
class WorkerProcess:
    worker_id: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the process `cocoach serve` started: its supervisor, and so its worker."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)

    def crash(self) -> None:
        """The worker dies at once (SIGKILL), and its supervisor with it, so nothing starts it
        again: a worker gone for good, as a crashed host. The worker first: killed through its
        supervisor, it would live on for a moment and could still answer a peer."""
        worker = self.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
        self.kill()
        deadline = time.monotonic() + TIMEOUT
        while Path(f"/proc/{worker}").exists():
            assert time.monotonic() < deadline, f"worker {worker} outlived its SIGKILL"
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        """The worker process serving now (the supervisor's child)."""
        return self.worker_pids()[-1]

    def worker_pids(self) -> list[int]:
        """The worker processes the supervisor started, in order (the last is current)."""
        prefix = "cocoach worker process "
        return [
            int(line.split()[3])
            for line in self.log.read_text().splitlines()
            if line.startswith(prefix)
        ]


def start_worker(
    data: Path,
    redis_url: str | None,
    worker_id: str,
    *,
    log_level: str | None = None,
    **env: str,
) -> WorkerProcess:
    """`cocoach serve --redis ... --port 0` as a real process (embedded without `redis_url`);
    waits until it is ready.

    Its output goes to a file (a pipe nobody reads would fill and stall the worker)."""
    environ = {
        **os.environ,
        "COCOACH_SECRET": SECRET,
        "COCOACH_ADMIN_KEY": ADMIN_KEY,
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    data.mkdir(parents=True, exist_ok=True)
    log = data / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--port",
                "0",
                "--data",
                str(data),
                *(["--redis", redis_url] if redis_url else []),
                "--worker-id",
                worker_id,
                "--log-level",
                log_level or os.environ.get("COCOACH_TEST_WORKER_LOG_LEVEL", "WARNING"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
        )
    deadline = time.monotonic() + 3 * TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text().splitlines():
            if line.startswith("cocoach listening on "):
                base = line.split()[-1]
                try:
                    _wait_ready(base)
                except AssertionError:
                    process.kill()  # not left behind, restarting its worker for ever
                    process.wait()
                    raise
                return WorkerProcess(worker_id, base, process, log)
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"worker {worker_id} did not start: {log.read_text()}")


def _wait_ready(base: str) -> None:
    import httpx

    deadline = time.monotonic() + 3 * TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{base} never became ready")
