"""Redis pub/sub broker: one subscriber connection per worker (in a cluster, one per node that
owns a channel it listens to: sharded pub/sub), fanning out locally."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from server.errors import ServiceUnavailable
from server.sync.broker import Callback, Fanout
from server.sync.redis_connect import Client
from server.sync.redis_shards import ShardedSubscriber

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0


class RedisBroker:
    def __init__(self, client: Client, *, drop_rate: float = 0.0) -> None:
        self._client = client
        # Test switch (COCOACH_TEST_DROP_PUBSUB): drop this share of received messages, to
        # prove that everything built on pub/sub recovers from a lost message.
        self._drop_rate = drop_rate
        # One Redis: one subscriber connection. A cluster: one per node (redis_shards.py).
        self._shards = (
            ShardedSubscriber(client, self._on_message)
            if isinstance(client, RedisCluster)
            else None
        )
        self._pubsub = client.pubsub() if isinstance(client, redis.Redis) else None
        self._fanout: Fanout[bytes] = Fanout()
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._subscribed = asyncio.Event()
        self._reconnects = 0

    @property
    def reconnects(self) -> int:
        return self._reconnects + (self._shards.lost if self._shards is not None else 0)

    async def publish(self, channel: str, message: bytes) -> None:
        try:
            if self._shards is not None:
                await self._client.spublish(channel, message)
            else:
                await self._client.publish(channel, message)
        except (RedisError, RedisClusterException) as exc:
            raise ServiceUnavailable(f"redis publish failed: {exc}") from exc

    async def subscribe(self, channel: str, callback: Callback) -> None:
        async with self._lock:
            if not self._fanout.add(channel, callback):
                return
            confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
            try:
                if self._shards is not None:
                    await self._shards.ssubscribe(channel)
                else:
                    assert self._pubsub is not None
                    await self._pubsub.subscribe(channel)
                self._subscribed.set()
                # A PUBLISH on another connection may overtake our SUBSCRIBE: wait until Redis
                # says we are subscribed, so a reply published right after cannot be missed.
                await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_TIMEOUT)
            except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
                self._fanout.remove(channel, callback)
                raise ServiceUnavailable(f"redis subscribe to {channel} failed: {exc}") from exc
            finally:
                self._confirmed.pop(channel, None)

    async def unsubscribe(self, channel: str, callback: Callback) -> None:
        async with self._lock:
            if self._fanout.remove(channel, callback):
                try:
                    if self._shards is not None:
                        await self._shards.sunsubscribe(channel)
                    else:
                        assert self._pubsub is not None
                        await self._pubsub.unsubscribe(channel)
                except (RedisError, RedisClusterException, OSError) as exc:
                    log.warning("redis unsubscribe from %s failed: %s", channel, exc)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, RedisClusterException) as exc:
            raise ServiceUnavailable(f"redis is not reachable: {exc}") from exc

    async def run(self) -> None:
        """Read the subscriber connection until cancelled. redis-py reconnects and re-subscribes
        by itself; we only back off while Redis is away."""
        if self._shards is not None:
            await self._shards.run()
            return
        assert self._pubsub is not None
        backoff, lost = 0.1, False
        await self._subscribed.wait()  # redis-py cannot read a pubsub before its first SUBSCRIBE
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                log.warning("redis subscriber lost its connection (%s); retrying", exc)
                lost = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if lost:  # a read worked again: one reconnect, however many retries it took
                self._reconnects += 1
                lost = False
            backoff = 0.1
            if message is not None:
                self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if kind in ("message", "smessage"):
            if self._drop_rate and random.random() < self._drop_rate:
                return
            self._fanout.dispatch(channel, message["data"])
        elif kind in ("subscribe", "ssubscribe"):
            future = self._confirmed.get(channel)
            if future is not None and not future.done():
                future.set_result(None)

    async def close(self) -> None:
        if self._shards is not None:
            await self._shards.aclose()
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8
