"""Media test helpers: real aiortc viewers on loopback that read the frame numbers the test
clip carries (server/library/clip.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from server.library.clip import read_frame_number
from server.media.ice import offer_host_addresses
from tests.support import TIMEOUT

# Every peer in the test process, ours and the server's, offers loopback only (DESIGN §3).
offer_host_addresses(["127.0.0.1"])


@dataclass
class Seen:
    number: int | None
    pts: int
    at: float


@dataclass
class PeerViewer:
    """A receive-only peer: what it was shown, in order."""

    pc: RTCPeerConnection
    frames: list[Seen] = field(default_factory=list)
    audio_packets: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _new_frame: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def numbers(self) -> list[int | None]:
        return [f.number for f in self.frames]

    def shown(self, start: int = 0) -> list[int | None]:
        """The pictures from frame `start` on, a run of one picture counted once: hold frames
        show the last picture again, as often as the picture stands still."""
        shown: list[int | None] = []
        for number in self.numbers[start:]:
            if not shown or shown[-1] != number:
                shown.append(number)
        return shown

    @property
    def last(self) -> int | None:
        return self.frames[-1].number if self.frames else None

    def on_track(self, track: MediaStreamTrack) -> None:
        reader = self._read_video if track.kind == "video" else self._read_audio
        self._tasks.append(asyncio.create_task(reader(track)))

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame: Any = await track.recv()
                self.frames.append(Seen(read_frame_number(frame), frame.pts, time.monotonic()))
                self._new_frame.set()

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.audio_packets += 1

    async def wait_for(
        self, check: Callable[[PeerViewer], bool], timeout: float = TIMEOUT, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout
        while not check(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {what}: last frames {self.numbers[-8:]}"
                )
            self._new_frame.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.1)):
                    await self._new_frame.wait()

    async def settle(self, quiet: float = 0.4, timeout: float = TIMEOUT) -> int | None:
        """Wait until no frame has arrived for `quiet` seconds; the last frame shown."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = len(self.frames)
            await asyncio.sleep(quiet)
            if len(self.frames) == count:
                return self.last
        raise AssertionError(f"frames kept coming: {self.numbers[-8:]}")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def offer_viewer(kinds: tuple[str, ...] = ("video", "audio")) -> tuple[PeerViewer, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer = PeerViewer(pc)
    pc.on("track", viewer.on_track)
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return viewer, pc.localDescription.sdp


async def accept_answer(viewer: PeerViewer, answer: str) -> None:
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


@contextlib.asynccontextmanager
async def viewer_with(
    answer_for: Callable[[str], Awaitable[str]], kinds: tuple[str, ...] = ("video", "audio")
) -> AsyncIterator[PeerViewer]:
    viewer, offer = await offer_viewer(kinds)
    try:
        await accept_answer(viewer, await answer_for(offer))
        yield viewer
    finally:
        await viewer.close()
