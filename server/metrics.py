"""Prometheus `/metrics`, per worker (docs/operations.md#metrics).

The hot path only adds to plain integers (`FrameCounts`) and one list (`LatencyHistogram`);
nothing is locked or labelled per message. prometheus_client turns them into the text format
when someone scrapes, and reads the gauges (rooms, members, viewers, queue) from the worker
then, so they cost nothing between scrapes."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FANOUT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class FrameCounts:
    """Frames one protocol received from and sent to clients on this worker."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0


class LatencyHistogram:
    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = FANOUT_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class Metrics:
    def __init__(self) -> None:
        self.room = FrameCounts()
        self.yjs = FrameCounts()
        # From an update's arrival from a client to its hand-off to this worker's other
        # clients: it includes the write to the document log, which comes first by design.
        self.fanout = LatencyHistogram()


@dataclass(frozen=True, slots=True)
class WorkerCounts:
    """What a worker holds at one moment, for the gauges of `/metrics`."""

    worker: str
    rooms: int
    home_rooms: int
    members: int
    document_clients: int
    media_viewers: int
    ingest_queue: int
    redis_reconnects: int
    voice_sessions: int = 0  # members in the conversations of the rooms homed here
    mixer_restarts: int = 0  # times the mixing child was started again
    mixer_dropped: int = 0  # talkers' frames dropped: the mixing child was behind
    mixer_late_ticks: int = 0  # 20 ms mixes the running child could not make in time


class _WorkerCollector(Collector):
    def __init__(self, counts: Callable[[], WorkerCounts], metrics: Metrics) -> None:
        self.counts = counts
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        now, metrics = self.counts(), self.metrics
        info = GaugeMetricFamily("cocoach_worker", "This worker (always 1).", labels=["worker"])
        info.add_metric([now.worker], 1)
        yield info
        yield GaugeMetricFamily(
            "cocoach_rooms", "Rooms with room-protocol clients on this worker.", now.rooms
        )
        yield GaugeMetricFamily(
            "cocoach_home_rooms", "Rooms whose home is this worker.", now.home_rooms
        )
        yield GaugeMetricFamily(
            "cocoach_members", "Room-protocol clients connected to this worker.", now.members
        )
        yield GaugeMetricFamily(
            "cocoach_document_clients",
            "Yjs clients connected to this worker.",
            now.document_clients,
        )
        yield GaugeMetricFamily(
            "cocoach_media_viewers", "WHEP viewers this worker serves.", now.media_viewers
        )
        yield GaugeMetricFamily(
            "cocoach_ingest_queue",
            "Videos waiting in this worker's ingest queue.",
            now.ingest_queue,
        )
        received = CounterMetricFamily(
            "cocoach_messages_received", "Frames received from clients.", labels=["protocol"]
        )
        sent = CounterMetricFamily(
            "cocoach_messages_sent", "Frames sent to clients.", labels=["protocol"]
        )
        for name, counts in (("room", metrics.room), ("yjs", metrics.yjs)):
            received.add_metric([name], counts.received)
            sent.add_metric([name], counts.sent)
        yield received
        yield sent
        yield GaugeMetricFamily(
            "cocoach_voice_sessions",
            "Members talking in the conversations of rooms whose home is this worker.",
            now.voice_sessions,
        )
        yield CounterMetricFamily(
            "cocoach_mixer_restarts",
            "Times this worker's mixing child stopped and was started again.",
            now.mixer_restarts,
        )
        yield CounterMetricFamily(
            "cocoach_mixer_dropped_frames",
            "Talkers' audio frames dropped because the mixing child was behind.",
            now.mixer_dropped,
        )
        yield CounterMetricFamily(
            "cocoach_mixer_late_ticks",
            "20 ms mixes the running mixing child made too late (it was too busy).",
            now.mixer_late_ticks,
        )
        yield CounterMetricFamily(
            "cocoach_redis_reconnects",
            "Times the Redis subscriber connection was lost and re-established.",
            now.redis_reconnects,
        )
        fanout = metrics.fanout
        yield HistogramMetricFamily(
            "cocoach_fanout_seconds",
            "From a client's document update arriving to its hand-off to this worker's other "
            "clients (includes the document-log write).",
            buckets=fanout.cumulative(),
            sum_value=fanout.total,
        )


def registry_for(counts: Callable[[], WorkerCounts], metrics: Metrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WorkerCollector(counts, metrics))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
