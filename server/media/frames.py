"""Encoded frames out of an aiortc receiver, without decoding them (DESIGN §3: pass-through).

aiortc's `RTCRtpReceiver` reassembles RTP packets into encoded frames and hands each to a
decoder thread through a `queue.Queue`. A live lesson needs the encoded frames themselves, to
forward and to record, and never the pictures: `tap_receiver` swaps that queue for one that hands
frames to us on the event loop and never decodes, and swaps the reassembly for one that does not
wait. aiortc's own completes a video frame only when the next one starts (a frame's worth of
latency, 33 ms at 30 fps) and holds four audio packets back (80 ms); a relay must not.

These are aiortc internals (name-mangled attributes), so pyproject pins aiortc's minor version
and `tests/test_live.py` fails loudly if they move.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

VIDEO_CAPACITY = 512  # packets: several frames of 720p
_VP8_START_CODE = b"\x9d\x01\x2a"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame as the publisher sent it."""

    data: bytes
    timestamp: int  # RTP units of its kind's clock, from 0 at the publisher's first frame
    keyframe: bool
    codec: str  # its mime type, lower case: video/vp8, video/h264, audio/opus


FrameSink = Callable[[EncodedFrame], None]


def is_vp8_keyframe(data: bytes) -> bool:
    """A VP8 key frame: frame-type bit 0 and the start code (RFC 6386 §9.1); the start code
    also tells a whole frame from the tail of one we joined in the middle of."""
    return len(data) >= 10 and not data[0] & 1 and data[3:6] == _VP8_START_CODE


def vp8_size(data: bytes) -> tuple[int, int]:
    """Width and height of a VP8 key frame."""
    return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(
        data[8:10], "little"
    ) & 0x3FFF


def is_h264_keyframe(data: bytes) -> bool:
    """An H.264 access unit (Annex B, as aiortc reassembles it) holding an IDR slice."""
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        if data[start + 3] & 0x1F == 5:
            return True
        start = data.find(b"\x00\x00\x01", start + 3)
    return False


def is_keyframe(codec: str, data: bytes) -> bool:
    if codec == "video/vp8":
        return is_vp8_keyframe(data)
    if codec == "video/h264":
        return is_h264_keyframe(data)
    return True  # every audio packet stands alone


class MarkerJitterBuffer(JitterBuffer):
    """Completes a video frame on its last packet (RTP marker bit, RFC 7741 §4.1) as well as
    when the next frame starts."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        assert self._origin is not None
        packets: list[RtpPacket] = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:  # the marker was lost: the frame ended anyway
                self.remove(count)
                return _joined(packets, timestamp)
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return _joined(packets, timestamp)
        return None


class PacketJitterBuffer(JitterBuffer):
    """Audio: every Opus packet is a frame of its own, passed on at once; a packet older than
    one already passed on is dropped (the decoder downstream conceals the gap)."""

    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._last: int | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if self._last is not None and uint16_add(packet.sequence_number, -self._last) >= 0x8000:
            return False, None
        if packet.sequence_number == self._last:
            return False, None
        self._last = packet.sequence_number
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


def _joined(packets: list[RtpPacket], timestamp: int) -> JitterFrame:
    return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)  # type: ignore[attr-defined]


class FrameTap(queue.Queue[Any]):
    """Stands in for the receiver's decoder queue: frames go to `sink`, on the event loop
    (the receiver puts from there); only the stop signal reaches the idle decoder thread."""

    def __init__(self, sink: FrameSink) -> None:
        super().__init__()
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None)
            return
        codec, frame = item
        mime = codec.mimeType.lower()
        data: bytes = frame.data  # joined by the jitter buffer: already one bytes object
        self._sink(EncodedFrame(data, frame.timestamp, is_keyframe(mime, data), mime))


def tap_receiver(receiver: Any, kind: str, sink: FrameSink) -> None:
    """Route `receiver`'s encoded frames to `sink`. Call before the connection comes up (the
    receiver starts its decoder thread with the queue it holds then)."""
    receiver._RTCRtpReceiver__decoder_queue = FrameTap(sink)
    receiver._RTCRtpReceiver__jitter_buffer = (
        PacketJitterBuffer()
        if kind == "audio"
        else MarkerJitterBuffer(capacity=VIDEO_CAPACITY, is_video=True)
    )
