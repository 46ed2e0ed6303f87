"""Recording a live lesson: the relayed packets muxed into WebM as they are, never re-encoded
(DESIGN §3). The file is written as a live stream with a cluster a second, so a worker that
dies mid-lesson leaves a file that plays up to its last second.

Muxing writes to disk, so it runs on a thread of its own behind a bounded queue; a disk too
slow to keep up loses packets from the recording (counted and logged), never the lesson.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from server.media.frames import vp8_size
from server.media.h264 import NotAnSps
from server.media.h264 import picture_size as h264_size
from server.media.relay import RelayedFrame

log = logging.getLogger(__name__)

QUEUE_PACKETS = 2_000  # about 20 s of 30 fps video with its audio
MS = Fraction(1, 1000)
# Matroska CodecPrivate for Opus (RFC 7845 §5.1): version 1, 2 channels (WebRTC always signals
# opus/48000/2), no pre-skip, 48 kHz, no gain, mapping family 0.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, 48000, 0, 0)
MUX_OPTIONS = {"live": "1", "cluster_time_limit": "1000", "flush_packets": "1"}


class Recorder:
    """Writes one recording file; `video` and `audio` are relay sinks (called on the event
    loop). Recording time 0 is the first key frame; `started_at` is its wall-clock time."""

    def __init__(self, path: Path, origin: float, on_start: Callable[[float], None]) -> None:
        self.path = path
        self._on_start = on_start
        self._origin = origin  # the relays' time 0 (Relay.origin)
        self._start_pts_s: float | None = None
        self.started_at: float | None = None
        self.dropped = 0
        self.written = 0
        self._last_ms = 0
        self._queue: queue.Queue[tuple[str, RelayedFrame, float] | None] = queue.Queue(
            QUEUE_PACKETS
        )
        self._thread = threading.Thread(target=self._run, name=f"recorder {path.parent.name}")
        self._thread.start()

    def video(self, relayed: RelayedFrame) -> None:
        if self._start_pts_s is None:
            if not relayed.frame.keyframe:
                return
            self._start_pts_s = relayed.pts / 90000
            self.started_at = self._origin + self._start_pts_s
            self._on_start(self.started_at)
        self._put("video", relayed, relayed.pts / 90000)

    def audio(self, relayed: RelayedFrame) -> None:
        if self._start_pts_s is not None:
            self._put("audio", relayed, relayed.pts / 48000)

    def _put(self, kind: str, relayed: RelayedFrame, seconds: float) -> None:
        assert self._start_pts_s is not None
        try:
            self._queue.put_nowait((kind, relayed, seconds - self._start_pts_s))
        except queue.Full:
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.warning("recording %s: disk too slow, %d packets lost", self.path, self.dropped)

    def close(self) -> None:
        """Finish the file; blocks until it is written (call from a thread)."""
        self._queue.put(None)
        self._thread.join()

    @property
    def seconds(self) -> float:
        return self._last_ms / 1000 if self.written else 0.0

    # ---- the muxing thread ---------------------------------------------------------------

    def _run(self) -> None:
        output: Any = None
        streams: dict[str, Any] = {}
        last: dict[str, int] = {}
        try:
            while (item := self._queue.get()) is not None:
                kind, relayed, seconds = item
                if output is None:
                    output, streams = self._open(relayed.frame.data, relayed.frame.codec)
                ms = max(round(seconds * 1000), last.get(kind, -1) + 1)
                last[kind] = ms
                packet = av.Packet(relayed.frame.data)
                packet.pts = packet.dts = ms
                packet.time_base = MS
                packet.is_keyframe = relayed.frame.keyframe
                packet.stream = streams[kind]
                output.mux(packet)
                self.written += 1
                self._last_ms = max(self._last_ms, ms)
        except (av.FFmpegError, OSError, NotAnSps) as exc:
            log.error("recording %s failed: %s", self.path, exc)
            self._drain()
        finally:
            if output is not None:
                output.close()

    def _open(self, keyframe: bytes, codec: str) -> tuple[Any, dict[str, Any]]:
        # WebM holds VP8; H.264 (from OBS Studio) needs Matroska proper. Both are ingested.
        name = codec.split("/")[1]
        container = "webm" if name == "vp8" else "matroska"
        output: Any = av.open(str(self.path), mode="w", format=container, options=MUX_OPTIONS)
        video = output.add_stream(name, rate=30)
        video.width, video.height = picture_size(name, keyframe)
        video.time_base = MS
        audio = output.add_stream("opus", rate=48000)
        audio.layout = "stereo"
        audio.codec_context.extradata = OPUS_HEAD
        audio.time_base = MS
        return output, {"video": video, "audio": audio}

    def _drain(self) -> None:
        while self._queue.get() is not None:
            pass


def picture_size(codec: str, keyframe: bytes) -> tuple[int, int]:
    """The container's header needs the picture's size: VP8 says it in the key frame's header,
    H.264 in its sequence parameter set. Read, never decoded: no codec runs here."""
    if codec == "vp8":
        return vp8_size(keyframe)
    if codec == "h264":
        return h264_size(keyframe)
    raise av.error.InvalidDataError(0, f"no picture size for {codec} without decoding it")
