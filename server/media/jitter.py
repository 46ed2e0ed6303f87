"""A talker's decoded audio between its arrival and the mixing clock (server/media/mixing.py):
about one to three 20 ms blocks, kept as short as the network's jitter allows."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

BLOCK = 960  # 20 ms at 48 kHz: the mixing clock's tick (server/media/vad.py's block)
Pcm = npt.NDArray[np.int16]
MAX_BUFFER = 3 * BLOCK  # past this a burst is trimmed to TRIM_TO: latency over completeness
TRIM_TO = BLOCK
SHRINK_WINDOW = 50  # ticks over which a buffer's unneeded samples are measured
SHRINK_PATIENCE = 100  # ticks to wait for a moment nobody hears to drop them in
SPARE_MARGIN = 96  # samples (2 ms) kept over the fewest a window needed


class JitterBuffer:
    """A talker's decoded audio between its arrival and the clock: about one to three blocks.
    A block missing at a tick is silence in the mix (concealment by silence); a burst past
    MAX_BUFFER is cut to TRIM_TO. Samples the buffer never needed through a whole
    SHRINK_WINDOW (it never ran lower than that, nor dry) are dropped, less SPARE_MARGIN, at
    the next moment nobody hears if one comes soon: the delay stays as short as the
    network's jitter and the phase of the talker's frames against the clock let it."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[float, Pcm]] = deque()  # (arrived, samples)
        self.buffered = 0
        self._had_audio = False
        self._spare = MAX_BUFFER  # the fewest samples left after a take, this window
        self._ticks = 0
        self._excess = 0  # samples to drop
        self._waited = 0  # ticks they have waited for a moment nobody hears
        self.underruns = 0
        self.trimmed = 0

    def put(self, pcm: Pcm, arrived: float) -> None:
        self._chunks.append((arrived, pcm))
        self.buffered += pcm.size
        if self.buffered > MAX_BUFFER:
            self._drop(self.buffered - TRIM_TO)

    def take(self, heard: Callable[[float], bool]) -> tuple[Pcm | None, float]:
        """One block (padded with silence if short), and when the audio that ends it arrived
        (a frame ending with that sample could not have left before); None when there is
        nothing. `heard(arrived)`: whether audio goes into the mixes (audio that does not can
        be dropped unheard)."""
        if not self.buffered:
            if self._had_audio:
                self.underruns += 1
                self._spare = 0  # it ran dry: this window needed all it had
            self._had_audio = False
            return None, 0.0
        self._had_audio = True
        parts: list[Pcm] = []
        left = BLOCK
        arrived = 0.0
        while left and self._chunks:
            arrived, chunk = self._chunks.popleft()
            parts.append(chunk[:left])
            if chunk.size > left:
                self._chunks.appendleft((arrived, chunk[left:]))
            left -= min(left, chunk.size)
        self.buffered -= BLOCK - left
        if left:
            parts.append(np.zeros(left, dtype=np.int16))
        self._shrink(heard)
        return (np.concatenate(parts) if len(parts) > 1 else parts[0]), arrived

    def _shrink(self, heard: Callable[[float], bool]) -> None:
        self._spare = min(self._spare, self.buffered)
        self._ticks += 1
        if self._ticks >= SHRINK_WINDOW:
            if self._spare > SPARE_MARGIN:
                self._excess, self._waited = self._spare - SPARE_MARGIN, 0
            self._spare, self._ticks = MAX_BUFFER, 0
        if not self._excess or not self._chunks:
            return
        # Drop where nobody hears it (the talker is quiet); a voice that never pauses loses
        # those few milliseconds after SHRINK_PATIENCE ticks all the same.
        if self._waited >= SHRINK_PATIENCE or not heard(self._chunks[0][0]):
            self._drop(min(self._excess, self.buffered))
            self._excess = 0
        else:
            self._waited += 1

    def _drop(self, samples: int) -> None:
        self.trimmed += 1
        while samples and self._chunks:
            when, chunk = self._chunks.popleft()
            if chunk.size > samples:
                self._chunks.appendleft((when, chunk[samples:]))
            cut = min(samples, chunk.size)
            self.buffered -= cut
            samples -= cut
