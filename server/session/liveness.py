"""Which workers are alive, from the heartbeats every worker publishes."""

from __future__ import annotations

import time
from collections.abc import Callable

from server.worker_wire import Heartbeat


class Liveness:
    def __init__(
        self,
        me: str,
        timeout: float,
        *,
        solo: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me
        # Embedded mode has one worker: any other worker id in a restored room state belongs
        # to an earlier run of this process and is certainly gone.
        self.solo = solo
        self.timeout = timeout
        self._clock = clock
        # A worker we have not heard from yet gets the benefit of the doubt for one timeout
        # after we start: its heartbeats may simply not have reached us yet.
        self._started = clock()
        self._seen: dict[str, float] = {}
        self._gone: set[str] = set()
        # While our own heartbeats do not get out we hear nobody either: the silence is ours,
        # not theirs. Judge nobody until one timeout after we are heard again.
        self._blind_until = 0.0

    def heard(self, heartbeat: Heartbeat) -> None:
        if heartbeat.alive:
            self._seen[heartbeat.worker] = self._clock()
            self._gone.discard(heartbeat.worker)
        else:
            self._seen.pop(heartbeat.worker, None)
            self._gone.add(heartbeat.worker)

    def blind(self) -> None:
        """Our heartbeat could not be published."""
        self._blind_until = float("inf")

    def sighted(self) -> None:
        """Our heartbeat was published."""
        if self._blind_until == float("inf"):
            self._blind_until = self._clock() + self.timeout

    def alive(self, worker: str) -> bool:
        if worker == self.me:
            return True
        if self.solo:
            return False
        if self._clock() < self._blind_until and worker not in self._gone:
            return True
        if worker in self._gone:
            return False
        return self._clock() - self._seen.get(worker, self._started) < self.timeout
