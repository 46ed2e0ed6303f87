"""Per-address token buckets with a bounded table: failed authentications and upload
creations are limited per client address, and the table never grows past `max_addresses`
(the least recently seen address is forgotten first; forgetting one only gives it a full
bucket again)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from server.edge.rate import TokenBucket


class AddressBuckets:
    def __init__(
        self,
        per_minute: float,
        burst: float,
        max_addresses: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_addresses = max(1, max_addresses)
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, address: str) -> TokenBucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket(self.rate, self.burst, self._clock)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
        return bucket

    def take(self, address: str) -> float:
        """Use one: 0.0 if allowed, else the seconds until it would be."""
        bucket = self._bucket(address)
        return 0.0 if bucket.take() else bucket.wait()

    def blocked_for(self, address: str) -> float:
        """Seconds until `address` may try once more (0.0: now), using nothing."""
        bucket = self._buckets.get(address)
        return 0.0 if bucket is None else bucket.wait()
