"""The playback clock at the room's home: the latest state, and a way for tracks to sleep
until a packet is due or the state changes, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib

from server.messages import PlaybackInfo


class PlaybackClock:
    def __init__(self, state: PlaybackInfo | None = None) -> None:
        self.state = state if state is not None else PlaybackInfo()
        self._changed = asyncio.Event()

    def update(self, state: PlaybackInfo) -> None:
        if state == self.state:
            return
        self.state = state
        # Wake every sleeping track; later sleepers wait on a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    def nudge(self) -> None:
        """Wake every sleeping track without a change (one of them has something to do)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float | None) -> None:
        """Sleep `seconds` (None: until the state changes), cut short by a state change."""
        changed = self._changed
        if seconds is None:
            await changed.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await changed.wait()
