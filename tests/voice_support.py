"""The conversation's other ends as real aiortc peers on loopback: a member's microphone
playing generated speech (espeak-ng) over `POST /rooms/{room}/voice`, and what comes back.

To tell voices apart in what a peer hears, each talker's microphone carries a faint tone of its
own while it speaks (its *marker*): a mix holds a talker exactly when its spectrum shows that
talker's line (tests/test_mixer.py does the same one level down)."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from bench.voice import RATE, at_level, band_energy, speak, to_int16
from tests.live_support import send_offer

BLOCK = 960
Pcm = np.ndarray[Any, Any]


def utterance(text: str, voice: str, marker: float, dbfs: float = -20.0) -> Pcm:
    """Speech with the talker's marker tone under it, 20 dB down."""
    speech = at_level(speak(text, voice), dbfs)
    t = np.arange(speech.size) / RATE
    return to_int16(speech + at_level(np.sin(2 * np.pi * marker * t), dbfs - 20.0))


def script(*parts: tuple[float, Pcm]) -> tuple[Pcm, list[tuple[float, float]]]:
    """A microphone's whole signal: each (silence before, sound) in turn, and when each sound
    is, in seconds from the start."""
    chunks: list[Pcm] = []
    spans: list[tuple[float, float]] = []
    clock = 0.0
    for gap, sound in parts:
        chunks.append(np.zeros(int(gap * RATE), dtype=np.int16))
        clock += gap
        chunks.append(sound)
        spans.append((clock, clock + sound.size / RATE))
        clock += sound.size / RATE
    return np.concatenate(chunks), spans


class Microphone(MediaStreamTrack):
    """Plays `pcm` in real time from when the connection asks for it, then silence; `started`
    is the wall-clock time of its first sample."""

    kind = "audio"

    def __init__(self, pcm: Pcm | None = None) -> None:
        super().__init__()
        self.pcm = pcm if pcm is not None else np.zeros(0, dtype=np.int16)
        self.started: float | None = None
        self._sent = 0  # samples sent: the RTP timestamp
        self._first = 0  # the sample `pcm` starts at

    def play(self, pcm: Pcm) -> None:
        """Start over with `pcm`, from now (the RTP timestamps go on, as a browser's do)."""
        self.pcm, self._first, self.started = pcm, self._sent, None

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        played = self._sent - self._first
        if self.started is None:
            self.started = time.time() - played / RATE
        wait = self.started + played / RATE - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        block = self.pcm[played : played + BLOCK]
        if block.size < BLOCK:
            block = np.concatenate([block, np.zeros(BLOCK - block.size, dtype=np.int16)])
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, RATE)
        self._sent += BLOCK
        return frame


@dataclass
class Heard:
    """What a peer received, as (wall-clock arrival, mono samples) blocks."""

    blocks: list[tuple[float, Pcm]] = field(default_factory=list)

    async def listen(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame: Any = await track.recv()
                mono = frame.to_ndarray().reshape(-1)[:: len(frame.layout.channels)]
                self.blocks.append((time.time(), mono.astype(np.int16)))

    async def until_any(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.blocks:
            assert time.monotonic() < deadline, "nothing heard"
            await asyncio.sleep(0.02)

    def since(self, start: float, end: float | None = None) -> Pcm:
        found = [b for t, b in self.blocks if t >= start and (end is None or t <= end)]
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int16)

    def energy(self, hz: float, start: float, end: float | None = None) -> float:
        pcm = self.since(start, end)
        return band_energy(pcm, hz) if pcm.size else 0.0


@dataclass
class Member:
    """A member's voice session: their microphone, what they hear, their camera if any."""

    pc: RTCPeerConnection
    mic: Microphone
    heard: Heard = field(default_factory=Heard)
    location: str = ""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()

    async def connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pc.connectionState != "connected":
            assert time.monotonic() < deadline, f"voice never connected: {self.pc.connectionState}"
            await asyncio.sleep(0.05)


async def start_voice(
    base: str,
    room: str,
    tok: str,
    mic: Microphone | None = None,
    *,
    camera: MediaStreamTrack | None = None,
    path: str = "voice",
) -> tuple[Member, httpx.Response]:
    """Join the room's conversation: an audio section sendrecv (and a camera, sendonly)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    member = Member(pc, mic or Microphone())
    pc.addTransceiver(member.mic, direction="sendrecv")
    if camera is not None:
        pc.addTransceiver(camera, direction="sendonly")

    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            member.tasks.append(asyncio.create_task(member.heard.listen(track)))

    pc.on("track", on_track)
    response = await send_offer(base, f"/rooms/{room}/{path}", pc, tok)
    if response.status_code == 201:
        member.location = response.headers["location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    else:
        await pc.close()
    return member, response


async def start_listener(base: str, room: str, tok: str) -> tuple[Member, httpx.Response]:
    """Listen only (WHEP `source=voice`)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    member = Member(pc, Microphone())
    pc.addTransceiver("audio", direction="recvonly")
    pc.on(
        "track",
        lambda track: member.tasks.append(asyncio.create_task(member.heard.listen(track))),
    )
    response = await send_offer(base, f"/rooms/{room}/whep?source=voice", pc, tok)
    if response.status_code == 201:
        member.location = response.headers["location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    else:
        await pc.close()
    return member, response
