"""A live stream fanned out as it arrives: one relay per kind (lesson video, lesson audio,
talk-back audio) per room, fed by whoever publishes it now and read by every track that follows
it. Frames pass through as the publisher encoded them (DESIGN §3, the fast path)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from server.media.frames import EncodedFrame

log = logging.getLogger(__name__)

TRACK_QUEUE_FRAMES = 90  # per viewer: 3 s of video; past that the viewer is too slow to keep up
KEYFRAME_REQUEST_INTERVAL = 0.3  # seconds between picture-loss reports sent upstream
# A browser publisher ignores a picture-loss report that comes within 300 ms of the last key
# frame it sent (libwebrtc's minimum key frame interval): a viewer that joined just after
# another one's key frame waited for the next natural one, 12 s and more. So a request waits
# until this long after the last key frame arrived.
KEYFRAME_AFTER_KEYFRAME = 0.35
# A follower still waiting for a key frame this long after the last request asks again: a
# request can be lost, or ignored by an encoder for reasons of its own.
KEYFRAME_RETRY = 1.0


@dataclass(frozen=True, slots=True)
class RelayedFrame:
    frame: EncodedFrame
    pts: int  # the relay's clock: monotonic across publishers, anchored to the wall clock
    wall: float  # time.time() when it arrived


Sink = Callable[[RelayedFrame], None]


class Relay:
    def __init__(self, kind: str, clock_rate: int, origin: float) -> None:
        self.kind = kind
        self.clock_rate = clock_rate
        self.origin = origin  # wall-clock time of pts 0; the relays of one room share it
        self.codec: str | None = None  # the mime type the publisher sends (lower case)
        self._anchor: int | None = None  # pts of the publisher's timestamp 0
        self._last_pts = -1
        self._sinks: list[Sink] = []
        self._ask_keyframe: Callable[[], None] | None = None
        self._asked_at = -1e9
        self._keyframe_at = -1e9  # monotonic time the last key frame arrived
        self._deferred: asyncio.TimerHandle | None = None
        self.frames = 0

    # ---- the publishing side -------------------------------------------------------------

    def begin(self, ask_keyframe: Callable[[], None] | None) -> None:
        """A publisher starts (or starts again): its timestamps start from 0, ours go on."""
        self._anchor = None
        self._ask_keyframe = ask_keyframe

    def end(self) -> None:
        self._ask_keyframe = None
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    def push(self, frame: EncodedFrame) -> None:
        if frame.keyframe:
            self._keyframe_at = time.monotonic()
        now = time.time()
        if self._anchor is None:
            self._anchor = round((now - self.origin) * self.clock_rate) - frame.timestamp
        pts = max(self._anchor + frame.timestamp, self._last_pts + 1)
        self._last_pts = pts
        self.frames += 1
        relayed = RelayedFrame(frame, pts, now)
        for sink in list(self._sinks):
            sink(relayed)

    # ---- the following side --------------------------------------------------------------

    def subscribe(self, sink: Sink, *, keyframe: bool = True) -> None:
        """Follow the relay; `keyframe` asks the publisher for one now (a viewer's track asks
        later, once its connection is up: a key frame before then would be wasted, and would
        hold the next request back by KEYFRAME_REQUEST_INTERVAL)."""
        self._sinks.append(sink)
        if keyframe:
            self.request_keyframe()

    def unsubscribe(self, sink: Sink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def request_keyframe(self) -> None:
        """Ask the publisher for a key frame: a viewer joined or lost the picture. Requests
        closer together than KEYFRAME_REQUEST_INTERVAL are one request, and none goes out
        within KEYFRAME_AFTER_KEYFRAME of the last key frame (the publisher would drop it)."""
        if self.kind != "video" or self._ask_keyframe is None:
            return
        now = time.monotonic()
        earliest = max(
            self._asked_at + KEYFRAME_REQUEST_INTERVAL, self._keyframe_at + KEYFRAME_AFTER_KEYFRAME
        )
        wait = earliest - now
        if wait <= 0:
            self._asked_at = now
            self._ask_keyframe()
        elif self._deferred is None:
            # A key frame is on its way, or just went by, maybe before this request's viewer
            # was ready: ask once more when the publisher will listen.
            self._deferred = asyncio.get_running_loop().call_later(wait, self._ask_deferred)

    def still_waiting(self) -> None:
        """A follower is still waiting for a key frame: ask again if the last request is more
        than KEYFRAME_RETRY old (it was lost, or ignored)."""
        if self._deferred is None and time.monotonic() - self._asked_at > KEYFRAME_RETRY:
            self.request_keyframe()

    def _ask_deferred(self) -> None:
        self._deferred = None
        self.request_keyframe()

    @property
    def followers(self) -> int:
        return len(self._sinks)


class RelayTrack(MediaStreamTrack):
    """One viewer's copy of a relay: the frames as `av.Packet`s, which aiortc's sender packetizes
    without encoding. Video starts at a key frame; a viewer that falls TRACK_QUEUE_FRAMES behind
    loses what is queued and starts again at the next key frame rather than lagging for ever."""

    def __init__(self, relay: Relay) -> None:
        super().__init__()
        self.kind = relay.kind
        self._relay = relay
        self._queue: asyncio.Queue[RelayedFrame] = asyncio.Queue(TRACK_QUEUE_FRAMES)
        self._time_base = Fraction(1, relay.clock_rate)
        self._need_keyframe = relay.kind == "video"
        self._reading = False  # until the connection is up, frames would only go stale
        self.dropped = 0
        relay.subscribe(self.offer, keyframe=False)

    def offer(self, relayed: RelayedFrame) -> None:
        if not self._reading:
            return
        if self._need_keyframe:
            if not relayed.frame.keyframe:
                self._relay.still_waiting()
                return
            self._need_keyframe = False
        try:
            self._queue.put_nowait(relayed)
        except asyncio.QueueFull:
            self.dropped += self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            self._need_keyframe = self.kind == "video"
            self._relay.request_keyframe()
            log.info("relay track %s: viewer too slow, %d frames dropped", self.id, self.dropped)

    @property
    def codec(self) -> str:
        return self._relay.codec or ("video/vp8" if self.kind == "video" else "audio/opus")

    def request_keyframe(self) -> None:
        """The viewer reported picture loss: only the publisher's encoder can help."""
        self._relay.request_keyframe()

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._reading:  # the viewer is connected: start from a fresh key frame
            self._reading = True
            self._relay.request_keyframe()
        relayed = await self._queue.get()
        packet = av.Packet(relayed.frame.data)
        packet.pts = relayed.pts
        packet.time_base = self._time_base
        return packet

    def stop(self) -> None:
        self._relay.unsubscribe(self.offer)
        super().stop()
