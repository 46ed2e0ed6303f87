"""A viewer's lesson tracks: the ingested file's packets, sent as they are, paced by the room's
playback clock (DESIGN §3).

Each track has its own demuxer, so viewers never wait on each other and a seek is one viewer's
business. Nothing is decoded or encoded here: aiortc packetizes the VP8 and Opus packets
directly (`RTCRtpSender` packs an `av.Packet` instead of encoding a frame). The RTP timestamp
follows the wall clock, so it only ever grows, across seeks and pauses alike.
"""

from __future__ import annotations

import logging
import math
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from server.media.clock import PlaybackClock
from server.media.pacing import EPSILON, RESEEK_LATE, display_position, due_at, needs_seek
from server.messages import PlaybackInfo

log = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.5  # seconds: a burst of picture-loss reports causes one re-seek
# A receiver that lost the last picture reports it only on the frame after the one that failed
# to decode: hold frames come every HOLD_REPEAT_FIRST for HOLD_REPEAT_SOON after the picture
# stops (recovery within about half a second), then every HOLD_REPEAT.
HOLD_REPEAT_FIRST = 0.25
HOLD_REPEAT_SOON = 1.5
HOLD_REPEAT = 2.0  # and then one every this long, while it stands still
HOLD_GAP = 0.1  # seconds to the next frame beyond which a hold frame goes first


class LessonTrack(MediaStreamTrack):
    """One stream of one file for one viewer."""

    clock_rate = 90000

    def __init__(self, path: Path, clock: PlaybackClock) -> None:
        super().__init__()
        self._clock = clock
        self._container: Any = av.open(str(path), mode="r")
        self._stream: Any = self._select_stream(self._container)
        self._time_base: Fraction = self._stream.time_base
        self._seconds_per_tick = float(self._time_base)  # float: Fraction per packet costs
        self._packets: Any = None
        self._next: Any = None
        self._eof = False
        self._seq = -1
        self.last_sent: float | None = None  # media time of the last packet sent
        self._rtp_origin = time.time()
        self._rtp_last = -1
        self._held_since: float | None = None  # when the picture last stopped
        self._late_seek_at = -math.inf
        self._hold_at = 0.0  # when the next hold frame is due
        self.sent = 0

    def _select_stream(self, container: Any) -> Any:
        raise NotImplementedError  # each kind picks its own stream

    # ---- reading ------------------------------------------------------------------------

    def _seek(self, position: float) -> None:
        """Jump to the keyframe at or before `position`."""
        offset = math.floor(max(0.0, position) / self._time_base)
        self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
        self._packets = self._container.demux(self._stream)
        self._next = None
        self._eof = False
        self.last_sent = None

    def _peek(self) -> Any:
        if self._next is None and not self._eof:
            if self._packets is None:
                self._packets = self._container.demux(self._stream)
            for packet in self._packets:
                if packet.pts is not None and packet.size:
                    self._next = packet
                    break
            else:
                self._eof = True
        return self._next

    def _media_time(self, packet: Any) -> float:
        return float(packet.pts) * self._seconds_per_tick

    # ---- sending ------------------------------------------------------------------------

    async def recv(self) -> Any:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            state = self._clock.state
            now = time.time()
            if state.seq != self._seq:
                self._seq = state.seq
                self._on_state(now)
            packet = self._peek()
            pts = None if packet is None else self._media_time(packet)
            due = None if pts is None else self._due(pts)
            if due is None:  # nothing more until the state changes (paused, or the end)
                hold = self._hold(now)
                if hold is not None:
                    return self._stamp(hold, now)
                await self._clock.sleep(self._hold_wait(now))
                continue
            assert pts is not None
            if due > now:
                # A wait longer than a few frames (a play scheduled ahead, slow motion): let
                # the receiver finish the picture it has now rather than at the next frame.
                if due - now > HOLD_GAP:
                    hold = self._hold(now)
                    if hold is not None:
                        return self._stamp(hold, now)
                await self._clock.sleep(min(due - now, self._hold_wait(now) or math.inf))
                continue
            if self._late(state, now, pts):
                # Behind the clock (a stalled loop, a long burst): jump, don't replay the past.
                self._late_seek_at = now
                self._seek(display_position(state, now))
                continue
            self._next = None
            if self._skip(pts):
                continue
            self.last_sent = pts
            self.sent += 1
            self._held_since = None
            return self._stamp(packet, now)

    def _late(self, state: PlaybackInfo, now: float, pts: float) -> bool:
        """Whether this packet is so far behind the clock that jumping beats catching up.

        Measured in media time, beyond a keyframe interval: right after a jump, the keyframe
        itself is up to one interval behind, and must not count as late (or the track would
        jump to it forever). And at most one jump per RESEEK_LATE of wall time, for files
        whose keyframes are further apart than ours."""
        if state.status != "playing" or now - self._late_seek_at < RESEEK_LATE:
            return False
        return display_position(state, now) - pts > RESEEK_LATE

    def _hold(self, now: float) -> Any:
        """A packet to send while the picture stands still, or None."""
        return None

    def _hold_wait(self, now: float) -> float | None:
        """How long to sleep, standing still, before `_hold` may have something to send."""
        return None

    def _on_state(self, now: float) -> None:
        if needs_seek(self._clock.state, now, self.last_sent):
            self._seek(display_position(self._clock.state, now))

    def _due(self, pts: float) -> float | None:
        return due_at(self._clock.state, pts)

    def _skip(self, pts: float) -> bool:
        """Whether a packet read after a seek is dropped rather than sent."""
        return False

    def _stamp(self, packet: Any, now: float) -> Any:
        rtp = max(self._rtp_last + 1, int((now - self._rtp_origin) * self.clock_rate))
        self._rtp_last = rtp
        packet.pts = rtp
        packet.dts = rtp
        packet.time_base = Fraction(1, self.clock_rate)
        return packet

    def stop(self) -> None:
        super().stop()
        self._container.close()


class LessonVideoTrack(LessonTrack):
    kind = "video"
    clock_rate = 90000

    def __init__(self, path: Path, clock: PlaybackClock, hold: bytes) -> None:
        """`hold` is the file's hold frame (server/library/holdframe.py), made ahead of time
        in a child process: no codec runs here."""
        super().__init__(path, clock)
        self._hold_frame = hold
        self._keyframe_wanted = False
        self._keyframe_at = 0.0

    def _select_stream(self, container: Any) -> Any:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self._fps = float(rate) if rate else 0.0
        return stream

    def _media_time(self, packet: Any) -> float:
        # Ingested files have a constant frame rate: frame n is at n / fps exactly, which is
        # what positions from `step` and the clients' frame rule use.
        seconds = super()._media_time(packet)
        return round(seconds * self._fps) / self._fps if self._fps else seconds

    def _hold(self, now: float) -> Any:
        # The first hold frame lets the receiver finish the last picture; the later ones give
        # a receiver that lost packets of that picture something to notice it by: it answers
        # with a picture-loss report, and the track sends the picture again from a keyframe.
        if self.sent == 0:
            return None  # no picture yet: nothing to hold
        if self._held_since is None:
            self._held_since = self._hold_at = now
        elif now < self._hold_at:
            return None
        held_for = now - self._held_since
        self._hold_at = now + (HOLD_REPEAT_FIRST if held_for < HOLD_REPEAT_SOON else HOLD_REPEAT)
        return av.Packet(self._hold_frame)

    def _hold_wait(self, now: float) -> float | None:
        return None if self._held_since is None else max(0.0, self._hold_at - now)

    def request_keyframe(self) -> None:
        """A viewer lost a picture (RTCP PLI): the next frame starts from a keyframe again.
        Without an encoder, the only keyframes are the file's: re-seek to the one before."""
        now = time.monotonic()
        if now - self._keyframe_at >= KEYFRAME_REQUEST_INTERVAL:
            self._keyframe_at = now
            self._keyframe_wanted = True
            self._seq = -1  # taken as a state change the next time the track looks
            self._clock.nudge()

    def _on_state(self, now: float) -> None:
        if self._keyframe_wanted:
            self._keyframe_wanted = False
            self._seek(display_position(self._clock.state, now))
            return
        super()._on_state(now)


class LessonAudioTrack(LessonTrack):
    """Sound plays only at 1x: packets are sent as they are, and Opus at another speed would
    need decoding and re-encoding. Paused, waiting or at another rate, the lesson is silent."""

    kind = "audio"
    clock_rate = 48000

    def __init__(self, path: Path, clock: PlaybackClock) -> None:
        super().__init__(path, clock)
        self._from = 0.0

    def _select_stream(self, container: Any) -> Any:
        return container.streams.audio[0]

    def _seek(self, position: float) -> None:
        super()._seek(position)
        self._from = position

    def _due(self, pts: float) -> float | None:
        state = self._clock.state
        if state.status != "playing" or state.rate != 1.0:
            return None
        if pts <= state.position + EPSILON:
            return -math.inf
        return due_at(state, pts)

    def _skip(self, pts: float) -> bool:
        # After a seek, the audio before the target would be heard at once: drop it.
        return pts + 0.02 < self._from


def has_audio(path: Path) -> bool:
    with av.open(str(path), mode="r") as container:
        return bool(container.streams.audio)
