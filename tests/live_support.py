"""A live lesson's other ends, as real aiortc peers on loopback: the classroom publishing a
generated lesson (frame numbers drawn in, a tone) over WHIP, a coach's microphone, and listeners
that tell which tone they hear."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from bench.kit.video import NumberedVideo
from server.library.clip import ClipSpec
from tests.support import TIMEOUT

SPEC = ClipSpec(width=320, height=180, fps=30)
LESSON_HZ = 440.0
COACH_HZ = 1200.0


class Tone(AudioStreamTrack):
    def __init__(self, hz: float) -> None:
        super().__init__()
        self.hz = hz
        self.sample = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if hasattr(self, "_start"):
            self._timestamp += 960
            wait = self._start + (self._timestamp / 48000) - time.time()
            await asyncio.sleep(wait)
        else:
            self._start = time.time()
            self._timestamp = 0
        t = (np.arange(self.sample, self.sample + 960) / 48000).astype(np.float64)
        self.sample += 960
        wave = (0.3 * np.sin(2 * math.pi * self.hz * t) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._timestamp
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


def dominant_hz(samples: np.ndarray[Any, Any], rate: int = 48000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum[1:]) + 1) * rate / len(samples)


@dataclass
class Ear:
    """What a peer hears: the dominant frequency of each received block of audio."""

    heard: list[float] = field(default_factory=list)
    _buffer: list[np.ndarray[Any, Any]] = field(default_factory=list)

    async def listen(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame: Any = await track.recv()
                mono = frame.to_ndarray().reshape(-1)[:: len(frame.layout.channels)]
                self._buffer.append(mono)
                if sum(len(b) for b in self._buffer) >= 4800:
                    block = np.concatenate(self._buffer)
                    self._buffer.clear()
                    if np.abs(block).max() > 1000:  # silence has no tone
                        self.heard.append(dominant_hz(block))

    def hears(self, hz: float) -> bool:
        return any(abs(h - hz) < 30 for h in self.heard[-5:])


@dataclass
class Sender:
    pc: RTCPeerConnection
    location: str = ""
    video: NumberedVideo | None = None
    ear: Ear = field(default_factory=Ear)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


async def send_offer(base: str, path: str, pc: RTCPeerConnection, tok: str) -> httpx.Response:
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await http.post(
            f"{base}{path}",
            content=pc.localDescription.sdp,
            headers={"content-type": "application/sdp", "authorization": f"Bearer {tok}"},
        )


async def start_publisher(
    base: str, room: str, tok: str, *, earpiece: bool = False, video_codec: str | None = None
) -> tuple[Sender, httpx.Response]:
    """The classroom: numbered video and a lesson tone over WHIP (201 or the refusal).
    `video_codec` ("video/H264") offers only that codec, as OBS Studio does."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    # made_at in wall-clock time, as the server stamps a recording's start
    sender = Sender(pc, video=NumberedVideo(SPEC, clock=time.time))
    video = pc.addTransceiver(sender.video, direction="sendonly")
    if video_codec is not None:
        codecs = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for c in codecs if c.mimeType == video_codec])
    pc.addTransceiver(Tone(LESSON_HZ), direction="sendrecv" if earpiece else "sendonly")
    pc.on("track", lambda track: sender.tasks.append(asyncio.create_task(sender.ear.listen(track))))
    return await _start(base, f"/rooms/{room}/whip", sender, tok)


async def start_talker(base: str, room: str, tok: str) -> tuple[Sender, httpx.Response]:
    """A coach's microphone: the coach's tone over WHIP to the talk-back resource."""
    sender = Sender(RTCPeerConnection(RTCConfiguration(iceServers=[])))
    sender.pc.addTransceiver(Tone(COACH_HZ), direction="sendonly")
    return await _start(base, f"/rooms/{room}/talkback", sender, tok)


async def _start(base: str, path: str, sender: Sender, tok: str) -> tuple[Sender, httpx.Response]:
    """Offer, and take the answer (201) or close on a refusal."""
    response = await send_offer(base, path, sender.pc, tok)
    if response.status_code == 201:
        sender.location = response.headers["location"]
        answer = RTCSessionDescription(sdp=response.text, type="answer")
        await sender.pc.setRemoteDescription(answer)
    else:
        await sender.pc.close()
    return sender, response


async def delete(base: str, location: str, tok: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await http.delete(f"{base}{location}", headers={"authorization": f"Bearer {tok}"})


@dataclass
class LiveViewer:
    pc: RTCPeerConnection
    frames: list[tuple[int | None, float]] = field(default_factory=list)
    ear: Ear = field(default_factory=Ear)
    kinds: list[str] = field(default_factory=list)
    location: str = ""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def on_track(self, track: MediaStreamTrack) -> None:
        self.kinds.append(track.kind)
        reader = self._watch(track) if track.kind == "video" else self.ear.listen(track)
        self.tasks.append(asyncio.create_task(reader))

    async def _watch(self, track: MediaStreamTrack) -> None:
        from server.library.clip import read_frame_number

        with contextlib.suppress(MediaStreamError):
            while True:
                frame: Any = await track.recv()
                self.frames.append((read_frame_number(frame), time.monotonic()))

    @property
    def numbers(self) -> list[int | None]:
        return [n for n, _ in self.frames]

    async def until(self, check: Any, what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; frames {self.numbers[-5:]}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


async def start_viewer(
    base: str,
    room: str,
    tok: str,
    *,
    source: str | None = None,
    kinds: tuple[str, ...] = ("video", "audio"),
) -> tuple[LiveViewer, httpx.Response]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer = LiveViewer(pc)
    pc.on("track", viewer.on_track)
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    query = f"?source={source}" if source else ""
    response = await send_offer(base, f"/rooms/{room}/whep{query}", pc, tok)
    if response.status_code == 201:
        viewer.location = response.headers["location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    else:
        await pc.close()
    return viewer, response
