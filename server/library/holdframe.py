"""The hold frame: a tiny VP8 inter frame that changes nothing on screen. Made only in the
transcode child (`python -m server.library.transcode hold`): libvpx never runs in a server
process, so a crash in it cannot take the rooms down (docs/videos.md).

A receiver may keep the last frame of a burst until the next frame's first packet arrives
(aiortc's jitter buffer does: it knows a frame is complete only when the timestamp changes).
When playback stops on a frame, the viewer must still show that frame, so the track sends one
hold frame after it. Every macroblock is skipped, so it copies the last picture whatever it
was; it is encoded error-resilient, so it leaves the decoder's probabilities as they were, and
it refreshes neither the golden nor the alt-ref reference. The file's following frames decode
exactly as without it (tests/test_lesson_tracks.py checks pixel for pixel).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

HOLD_OPTIONS = {
    "error-resilient": "1",  # refresh_entropy_probs = 0: the next real frame decodes as before
    "static-thresh": "100000000",  # every block below this difference is skipped: all of them
    "deadline": "realtime",
    "lag-in-frames": "0",
    "auto-alt-ref": "0",
    "cpu-used": "8",
}
MAX_SIDE = 4096  # larger than any rendition the ingest makes


def hold_frame(width: int, height: int) -> bytes:
    """An all-skip VP8 inter frame for pictures of this size (the size sets the block count)."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"a hold frame for {width}x{height}: each side must be 1-{MAX_SIDE}")
    encoder: Any = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.bit_rate = 500_000  # libvpx needs a rate to plan with; this frame carries none
    encoder.gop_size = 1000
    # One thread: libvpx's threaded encoder crashed the process in about half of all runs
    # with this skip threshold (seen with PyAV 18); a 45-byte frame needs no threads.
    encoder.thread_count = 1
    encoder.options = HOLD_OPTIONS
    # yuv420p rounds odd sides up for its chroma planes; the luma plane is what is sized here.
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        plane.update(np.full(plane.buffer_size, 128, np.uint8).tobytes())
    packets: list[bytes] = []
    for pts in range(2):
        frame.pts = pts
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets[1]  # the first is the keyframe; the second copies it
