"""Redis failures become ServiceUnavailable: the callers decide to retry, degrade or refuse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisClusterException, RedisError

from server.errors import ServiceUnavailable


@contextmanager
def unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, RedisClusterException) as exc:
        raise ServiceUnavailable(f"{what}: {exc}") from exc
