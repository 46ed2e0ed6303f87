"""Receive-only WHEP viewers on loopback (bench/live.py, bench/media.py), and the server they
watch."""

from __future__ import annotations

import asyncio
import time
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

import httpx
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from bench import infra
from bench.kit import BenchError

WAIT = 10.0  # the longest any single expected event may take before the phase fails
JOIN_CONCURRENCY = 8


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def start_server(stack: infra.Stack, name: str) -> infra.Proc:
    """An embedded `cocoach serve` offering 127.0.0.1 as its only ICE candidate and accepting
    loopback peers only (started in a thread: starting blocks until it is ready)."""
    return await asyncio.to_thread(
        stack.cocoach,
        name,
        None,
        COCOACH_MEDIA_HOST_ADDRESSES="127.0.0.1",
        COCOACH_MEDIA_REMOTE_NETWORKS="loopback",
    )


@dataclass(eq=False)
class WhepViewer:
    """A receive-only peer watching `room` (a subclass says which and what it does with the
    tracks), as coach `sub`: the times of its POST, answer, connection and first frame, and
    the frames it has received."""

    room: ClassVar[str]
    source: ClassVar[str | None] = None  # ?source= of the POST

    sub: str
    _: KW_ONLY
    pc: RTCPeerConnection = field(default_factory=new_pc)
    video_frames: int = 0
    audio_frames: int = 0
    posted: float = 0.0  # perf_counter times
    answered: float | None = None
    connected: float | None = None
    first_frame: float | None = None
    location: str = ""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    @property
    def token(self) -> str:
        return infra.coach_token(self.room, self.sub)

    def prepare(self) -> None:
        """Called with the transceivers added, before the offer is made."""

    def _on_track(self, track: MediaStreamTrack) -> None:
        raise NotImplementedError

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected" and self.connected is None:
            self.connected = time.perf_counter()

    def _count_video(self, _frame: Any) -> None:
        if self.first_frame is None:
            self.first_frame = time.perf_counter()
        self.video_frames += 1

    def _count_audio(self, _frame: Any) -> None:
        self.audio_frames += 1

    def has_frames(self, count: int) -> bool:
        return self.video_frames >= count

    async def wait_frames(self, count: int, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not self.has_frames(count):
            if time.monotonic() > deadline:
                raise BenchError(
                    f"viewer {self.sub}: {self.video_frames} video and {self.audio_frames} audio "
                    f"frames after {timeout} s "
                    f"(connection {self.pc.connectionState})"
                )
            await asyncio.sleep(0.01)

    async def join(self, http: httpx.AsyncClient, base: str) -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.prepare()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        query = f"?source={self.source}" if self.source else ""
        self.posted = time.perf_counter()
        response = await http.post(
            f"{base}/rooms/{self.room}/whep{query}",
            content=self.pc.localDescription.sdp,
            headers={"authorization": f"Bearer {self.token}", "content-type": "application/sdp"},
        )
        self.answered = time.perf_counter()
        if response.status_code != 201:
            await self.pc.close()
            raise BenchError(f"WHEP POST: HTTP {response.status_code} {response.text[:300]}")
        self.location = response.headers["location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))

    async def leave(self, http: httpx.AsyncClient | None = None, base: str = "") -> None:
        """DELETE the session (given `http`), and close the peer connection in any case."""
        try:
            if http is not None and self.location:
                response = await http.delete(
                    base + self.location, headers={"authorization": f"Bearer {self.token}"}
                )
                if response.status_code != 200:
                    raise BenchError(f"WHEP DELETE: HTTP {response.status_code} {response.text}")
        finally:
            for task in self._tasks:
                task.cancel()
            await self.pc.close()


async def gather_limited(coroutines: list[Any], limit: int = JOIN_CONCURRENCY) -> list[Any]:
    """Run `coroutines`, `limit` at a time, all to the end; raise the first error, if any."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine: Any) -> Any:
        async with semaphore:
            return await coroutine

    results = await asyncio.gather(*(one(c) for c in coroutines), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
