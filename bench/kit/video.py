"""A video track that says which frame a picture is (tests/live_support.py uses it too)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import av
from aiortc.mediastreams import VideoStreamTrack

from server.library.clip import ClipSpec, draw


class NumberedVideo(VideoStreamTrack):
    """Frames 0, 1, 2, ... with their number drawn in (`read_frame_number` reads it back), at
    30 fps; `made_at` holds when each was made, by `clock`."""

    def __init__(self, spec: ClipSpec, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self.spec = spec
        self.clock = clock
        self.number = 0
        self.made_at: dict[int, float] = {}

    async def recv(self) -> Any:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(draw(self.spec, self.number), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.made_at[self.number] = self.clock()
        self.number += 1
        return frame
