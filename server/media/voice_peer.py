"""One member's voice session at the room's home (`POST /rooms/{room}/voice`): their
microphone up, the room's mix down on the same audio section, and their camera, if they send
one, into a relay that `whep?source=camera` follows. Nothing is decoded here: the microphone's
Opus packets go to the mixing child as they came, the mix comes back as Opus packets, and the
camera's frames are relayed as they were encoded."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from server.errors import BadSdp
from server.media.frames import EncodedFrame, tap_receiver
from server.media.ice import RemotePolicy
from server.media.peer import prefer_codec
from server.media.publisher import LIVE_CODECS, Publisher

log = logging.getLogger(__name__)

MIX_QUEUE = 10  # frames (200 ms): past this the listener is behind; the oldest go
RATE = 48_000
RTP_CYCLE = 1 << 32
HALF_RTP = 1 << 31
JUMP = 2.0  # seconds later than its anchor says: the sender's clock jumped, not the network


class MixTrack(MediaStreamTrack):
    """The room's conversation as one listener hears it: the mixing child's Opus frames, sent
    as they are. The child sends a frame every 20 ms (a constant one for silence), so the
    stream never stops and its timestamps are the child's."""

    kind = "audio"
    codec = "audio/opus"

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue(MIX_QUEUE)
        self._time_base = Fraction(1, RATE)
        self._on_stop = on_stop
        self._reading = False  # until the connection is up, frames would only go stale
        self.dropped = 0

    def put(self, opus: bytes, timestamp: int) -> None:
        if not self._reading or self.readyState != "live":
            return
        if self._queue.full():  # late audio is worth nothing: keep the newest
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait((opus, timestamp))

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        self._reading = True
        opus, timestamp = await self._queue.get()
        packet = av.Packet(opus)
        packet.pts = timestamp
        packet.time_base = self._time_base
        return packet

    def stop(self) -> None:
        if self.readyState == "live" and self._on_stop is not None:
            self._on_stop()
        super().stop()


class SpeechClock:
    """When a microphone's packet was spoken, on the server's clock: its RTP time, anchored at
    the least delayed packet seen. Arrival times alone would squeeze or stretch the talk
    measured whenever the network or this process delays packets in bursts; the RTP timestamps
    are the talker's own clock. The anchor creeps later by DRIFT a packet, so a sender clock
    slower than ours (up to 500 ppm) is followed, while a burst of late packets moves it by
    almost nothing."""

    DRIFT = 1e-5  # seconds a packet: 0.5 ms a second of talk

    def __init__(self) -> None:
        self._offset: float | None = None  # server time of RTP time 0, least delayed so far
        self._last: int | None = None
        self._wraps = 0  # the 32-bit RTP timestamp wraps every 24.9 hours at 48 kHz

    def _unwrapped(self, timestamp: int) -> int:
        wraps = self._wraps
        if self._last is not None:
            if self._last - timestamp > HALF_RTP:  # past the wrap
                wraps = self._wraps = self._wraps + 1
            elif timestamp - self._last > HALF_RTP:  # a late packet from before it
                return timestamp + (wraps - 1) * RTP_CYCLE
        self._last = timestamp
        return timestamp + wraps * RTP_CYCLE

    def when(self, timestamp: int, now: float | None = None) -> float:
        media = self._unwrapped(timestamp) / RATE
        arrived = time.time() if now is None else now
        offset = arrived - media
        if self._offset is None or offset < self._offset or offset - self._offset > JUMP:
            # The first packet, a less delayed one, or a sender whose timestamps jumped back
            # (a WHIP client that started its stream again): anchor here.
            self._offset = offset
        else:
            self._offset = min(offset, self._offset + self.DRIFT)
        return self._offset + media


_OPUS = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.MULTILINE | re.IGNORECASE)


def asking_for_dtx(answer: str) -> str:
    """The answer with `usedtx=1` on its Opus formats (RFC 7587 §6.1: the receiver prefers
    DTX): a browser's microphone then sends a frame every 400 ms while its person is silent
    instead of 50 a second, which is most of the conversation's packets for nothing."""
    lines = answer.split("\r\n")
    for payload in _OPUS.findall(answer):
        prefix = f"a=fmtp:{payload} "
        for index, line in enumerate(lines):
            if line.startswith(prefix) and "usedtx=" not in line:
                lines[index] = f"{line};usedtx=1"
                break
        else:
            at = lines.index(next(x for x in lines if x.lower().startswith(f"a=rtpmap:{payload} ")))
            lines.insert(at + 1, f"{prefix}usedtx=1")
    return "\r\n".join(lines)


@dataclass(eq=False)
class VoicePeer(Publisher):
    """`routes` holds the camera's relay if the member may send one; `mix` is what they hear;
    `on_audio(opus, arrived)` takes their microphone's packets."""

    mix: MixTrack | None = None
    on_audio: Callable[[bytes, float], None] | None = None
    sends_camera: bool = False
    hears: bool = False  # the offer receives the mix (sendrecv)

    def _prepare(self, transceivers: list[Any]) -> None:
        audio = video = None
        for transceiver in transceivers:
            # aiortc keeps the offer's direction reversed, as seen from here (publisher.py)
            sends = transceiver._offerDirection in ("recvonly", "sendrecv")
            if transceiver.kind == "audio" and audio is None and sends:
                audio = transceiver
            elif transceiver.kind == "video" and video is None and sends and self.routes:
                video = transceiver
            else:
                transceiver.direction = "inactive"
        if audio is None:
            raise BadSdp("the offer sends no audio (a voice offer's audio section is sendrecv)")
        prefer_codec(audio, ("audio/opus",))
        on_audio = self.on_audio
        if on_audio is not None:
            clock = SpeechClock()
            tap_receiver(
                audio.receiver, "audio", lambda f: on_audio(f.data, clock.when(f.timestamp))
            )
        if audio._offerDirection == "sendrecv" and self.mix is not None:
            self.pc.addTrack(self.mix)
            self.hears = True
        else:
            audio.direction = "recvonly"
        if video is not None:
            relay = self.routes["video"]
            relay.codec = prefer_codec(video, LIVE_CODECS["video"]).lower()
            tap_receiver(video.receiver, "video", self._camera_frame)
            self._video_receiver = video.receiver
            video.direction = "recvonly"
            self.sends_camera = True

    async def answer_offer(self, offer: str, policy: RemotePolicy) -> str:
        return asking_for_dtx(await self.answer(offer, policy, self._prepare))

    def _camera_frame(self, frame: EncodedFrame) -> None:
        relay = self.routes.get("video")
        if relay is not None and not self.gone:
            relay.push(frame)

    def stop_media(self) -> None:
        if self.mix is not None:
            self.mix.stop()
