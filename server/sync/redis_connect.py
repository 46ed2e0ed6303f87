"""Connecting to Redis, in the modes `--redis` accepts (docs/deploy.md):

- `redis://host:port/db` (or `rediss://`, `unix://`): one Redis.
- `redis+sentinel://host:port,host:port/service[/db]` (or `rediss+sentinel://`): the primary
  that Redis Sentinel names for `service`, followed through failovers: a connection that breaks
  asks the sentinels again. A user and password in the URL are the data nodes'.
- `redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`): a Redis Cluster (7 or
  later), found from any of the nodes named. Every key and channel of a room is in the room's
  slot, and pub/sub is sharded (`SPUBLISH`/`SSUBSCRIBE`), so a room's traffic stays on the node
  that owns it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff

from server.errors import ConfigError

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}

# What the Redis backends are handed: one server's client (also through Sentinel) or a
# cluster's. They use commands both have; `sharded` tells which pub/sub to use.
Client = redis.Redis | RedisCluster


def sharded(client: Client) -> bool:
    """Whether pub/sub must be sharded (a cluster): SPUBLISH and SSUBSCRIBE, each channel in
    one slot, so a publish in a room's Lua script stays on the room's node."""
    return isinstance(client, RedisCluster)


def publish_command(client: Client) -> str:
    """The publish command for Lua scripts on `client`."""
    return "SPUBLISH" if sharded(client) else "PUBLISH"


def client_options() -> dict[str, Any]:
    """Fail fast while Redis is away: the callers degrade (serve locally, hold, retry) rather
    than wait out redis-py's default retries, which would stall every room on the worker."""
    return {
        "socket_connect_timeout": 1.0,
        "socket_timeout": 5.0,
        "health_check_interval": 5,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
    }


@dataclass(frozen=True)
class Credentials:
    """The data nodes' user, password and TLS, from the URL."""

    username: str | None
    password: str | None
    tls: bool

    def options(self) -> dict[str, Any]:
        return {"username": self.username, "password": self.password, "ssl": self.tls}


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: list[tuple[str, int]]
    service: str
    db: int
    credentials: Credentials


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def is_cluster(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


@dataclass(frozen=True)
class ClusterAddress:
    nodes: list[tuple[str, int]]
    credentials: Credentials


def parse_cluster(url: str) -> ClusterAddress:
    """`redis+cluster://[user:password@]host:port[,host:port...]`."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    if parts.path.strip("/"):
        raise ConfigError("--redis: a cluster URL has no database: redis+cluster://host:port")
    return ClusterAddress(
        _host_ports(hosts, "cluster node"),
        Credentials(
            unquote(username) or None, unquote(password) or None, CLUSTER_SCHEMES[parts.scheme]
        ),
    )


def _host_ports(hosts: str, what: str) -> list[tuple[str, int]]:
    found = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--redis: {what} address {item!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    return found


def parse_sentinel(url: str) -> SentinelAddress:
    """`redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = _host_ports(hosts, "sentinel")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError(
            "--redis: a sentinel URL names its service: redis+sentinel://host:port/mymaster[/db]"
        )
    return SentinelAddress(
        sentinels,
        unquote(path[0]),
        int(path[1]) if len(path) == 2 else 0,
        Credentials(
            unquote(username) or None, unquote(password) or None, SENTINEL_SCHEMES[parts.scheme]
        ),
    )


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Client]:
    """A client for `url`, closed on exit."""
    if is_cluster(url):
        address = parse_cluster(url)
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
            **address.credentials.options(),
            **client_options(),
        )
        try:
            yield cluster
        finally:
            await cluster.aclose()
        return
    if not is_sentinel(url):
        client = redis.Redis.from_url(url, **client_options())
        try:
            yield client
        finally:
            await client.aclose()
        return
    watched = parse_sentinel(url)
    timeouts = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
    sentinel = Sentinel(watched.sentinels, sentinel_kwargs=timeouts)
    client = sentinel.master_for(
        watched.service,
        db=watched.db,
        **watched.credentials.options(),
        **client_options(),
    )
    try:
        yield client
    finally:
        await client.aclose()
        for each in sentinel.sentinels:
            await each.aclose()


def unreachable(url: str, timeout: float) -> str | None:
    """Why Redis at `url` cannot be reached now, or None (`cocoach serve`'s check before it
    starts, server/preflight.py): one blocking PING, no pool kept."""
    import redis as sync_redis
    from redis.cluster import ClusterNode as SyncClusterNode
    from redis.cluster import RedisCluster as SyncRedisCluster
    from redis.exceptions import RedisClusterException
    from redis.sentinel import MasterNotFoundError
    from redis.sentinel import Sentinel as SyncSentinel

    client: sync_redis.Redis | SyncRedisCluster
    try:
        if is_cluster(url):
            nodes = parse_cluster(url)
            client = SyncRedisCluster(
                startup_nodes=[
                    SyncClusterNode(host, port)  # type: ignore[no-untyped-call]
                    for host, port in nodes.nodes
                ],
                **nodes.credentials.options(),
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
            )
        elif is_sentinel(url):
            address = parse_sentinel(url)
            timeouts = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
            sentinel = SyncSentinel(address.sentinels, sentinel_kwargs=timeouts)
            client = sentinel.master_for(
                address.service,
                db=address.db,
                **address.credentials.options(),
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
            )
        else:
            client = sync_redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        try:
            client.ping()
        finally:
            client.close()
    except MasterNotFoundError:
        # redis-py's own message holds the whole client's repr: say it in a line.
        hosts = ", ".join(f"{host}:{port}" for host, port in address.sentinels)
        return f"no Sentinel of {hosts} names a primary for service {address.service!r}"
    except (sync_redis.RedisError, RedisClusterException, OSError, ValueError) as exc:
        return (str(exc) or type(exc).__name__)[:300]
    except ConfigError as exc:
        return exc.message
    return None
