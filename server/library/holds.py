"""Hold frames for the lesson tracks, one per picture size, made once by a transcode child and
kept beside the renditions (`<library>/holds/<W>x<H>.vp8`).

The ingest makes the hold frame of each rendition as soon as the rendition exists, so a viewer
never waits for one; a library ingested before hold frames were kept gets them on first use.
A child that crashes is retried a few times; what a viewer then gets is a clear error, and the
server and its other rooms go on (the crash was in the child).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from server.errors import ServiceUnavailable
from server.library.child import IngestFailed, run_child
from server.once import Once

log = logging.getLogger(__name__)

ATTEMPTS = 3  # a child that crashes this often for one size is not asked again until restart
HOLD_SECONDS = 30.0  # a child making hold frames that is silent this long is stuck


def hold_name(width: int, height: int) -> str:
    return f"{width}x{height}.vp8"


class HoldFrames:
    def __init__(self, root: Path, nice: int = 0) -> None:
        self.directory = root / "holds"
        self.nice = nice
        self._made: dict[tuple[int, int], bytes] = {}
        self._making: Once[tuple[int, int], bytes] = Once()

    async def get(self, width: int, height: int) -> bytes:
        """The hold frame for pictures of this size: from memory, from disk, or made now."""
        key = (width, height)
        found = self._made.get(key)
        if found is not None:
            return found
        frame = await self._making.run(key, lambda: self._load_or_make(width, height))
        self._made[key] = frame
        return frame

    async def make(self, sizes: list[tuple[int, int]]) -> None:
        """Make (once) the hold frames of these sizes, ahead of any viewer: the missing ones in
        one child, then any that child did not get to (it crashed) one by one."""
        missing = [
            size
            for size in dict.fromkeys(sizes)
            if size not in self._made
            and not await asyncio.to_thread((self.directory / hold_name(*size)).is_file)
        ]
        if missing:
            try:
                await run_child(
                    ["hold", str(self.directory), *(f"{w}x{h}" for w, h in missing)],
                    nice=self.nice,
                    stall=HOLD_SECONDS,
                )
            except IngestFailed as exc:
                log.warning("hold frames: a batch of %d stopped: %s", len(missing), exc)
        for width, height in sizes:
            await self.get(width, height)

    async def _load_or_make(self, width: int, height: int) -> bytes:
        path = self.directory / hold_name(width, height)
        frame = await asyncio.to_thread(_read, path)
        if frame:
            return frame
        error: IngestFailed | None = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await run_child(
                    ["hold", str(self.directory), f"{width}x{height}"],
                    nice=self.nice,
                    stall=HOLD_SECONDS,
                )
            except IngestFailed as exc:
                error = exc
                log.warning(
                    "hold frame %dx%d: attempt %d of %d failed: %s",
                    width,
                    height,
                    attempt,
                    ATTEMPTS,
                    exc,
                )
                continue
            frame = await asyncio.to_thread(_read, path)
            if frame:
                return frame
        raise ServiceUnavailable(f"the hold frame for {width}x{height} could not be made: {error}")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
