"""Connecting to Redis, in the modes `--redis` accepts (docs/deploy.md):

- `redis://host:port/db` (or `rediss://`, `unix://`): one Redis.
- `redis+sentinel://host:port,host:port/service[/db]` (or `rediss+sentinel://`): the primary
  that Redis Sentinel names for `service`, followed through failovers: a connection that breaks
  asks the sentinels again. A user and password in the URL are the data nodes'.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff

from server.errors import ConfigError

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS


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
class SentinelAddress:
    sentinels: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None
    tls: bool


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def parse_sentinel(url: str) -> SentinelAddress:
    """`redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--redis: sentinel address {item!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError(
            "--redis: a sentinel URL names its service: redis+sentinel://host:port/mymaster[/db]"
        )
    return SentinelAddress(
        sentinels,
        unquote(path[0]),
        int(path[1]) if len(path) == 2 else 0,
        unquote(username) or None,
        unquote(password) or None,
        SENTINEL_SCHEMES[parts.scheme],
    )


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[redis.Redis]:
    """A client for `url`, closed on exit."""
    if not is_sentinel(url):
        client = redis.Redis.from_url(url, **client_options())
        try:
            yield client
        finally:
            await client.aclose()
        return
    address = parse_sentinel(url)
    timeouts = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
    sentinel = Sentinel(address.sentinels, sentinel_kwargs=timeouts)
    client = sentinel.master_for(
        address.service,
        db=address.db,
        username=address.username,
        password=address.password,
        ssl=address.tls,
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
    from redis.sentinel import Sentinel as SyncSentinel

    try:
        if is_sentinel(url):
            address = parse_sentinel(url)
            timeouts = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
            sentinel = SyncSentinel(address.sentinels, sentinel_kwargs=timeouts)
            client = sentinel.master_for(
                address.service,
                db=address.db,
                username=address.username,
                password=address.password,
                ssl=address.tls,
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
    except (sync_redis.RedisError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    except ConfigError as exc:
        return exc.message
    return None
