"""One WHEP viewer at the room's home: its peer connection and its own pair of lesson tracks."""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from server.errors import BadSdp
from server.media.clock import PlaybackClock
from server.media.ice import RemotePolicy, candidate_host, filter_candidates
from server.media.tracks import LessonAudioTrack, LessonTrack, LessonVideoTrack, has_audio

log = logging.getLogger(__name__)

_MEDIA_LINE = re.compile(r"^m=(audio|video) ", re.MULTILINE)


def check_offer(sdp: str) -> set[str]:
    """The kinds of media an offer asks for; BadSdp naming what is wrong with it."""
    if not sdp.startswith("v=0"):
        raise BadSdp("the body is not an SDP offer (it must start with v=0)")
    kinds = set(_MEDIA_LINE.findall(sdp))
    if not kinds:
        raise BadSdp("the offer has no audio or video media section")
    if "video" in kinds and "VP8/90000" not in sdp:
        raise BadSdp("the offer cannot receive VP8 video (lessons are served as VP8, as stored)")
    if "audio" in kinds and "opus/48000" not in sdp.lower():
        raise BadSdp("the offer cannot receive Opus audio")
    if "a=ice-ufrag:" not in sdp:
        raise BadSdp("the offer has no ICE credentials (a=ice-ufrag)")
    return kinds


@dataclass(eq=False)
class Viewer:
    user: str
    name: str
    pc: Any
    tracks: list[LessonTrack]
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    created: float = field(default_factory=time.monotonic)
    gone: bool = False

    @property
    def connected(self) -> bool:
        return bool(self.pc.connectionState == "connected")

    async def answer(self, offer: str, policy: RemotePolicy) -> str:
        sdp, dropped = filter_candidates(offer, policy)
        if dropped:
            log.info(
                "viewer %s: dropped %d candidates outside the allowed networks", self.id, dropped
            )
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except (ValueError, KeyError, IndexError) as exc:
            raise BadSdp(f"the offer could not be used: {exc}") from None
        for transceiver in self.pc.getTransceivers():
            track = next((t for t in self.tracks if t.kind == transceiver.kind), None)
            if track is None or transceiver.direction not in ("recvonly", "sendrecv"):
                continue
            codecs = RTCRtpSender.getCapabilities(transceiver.kind).codecs
            wanted = "video/VP8" if transceiver.kind == "video" else "audio/opus"
            transceiver.setCodecPreferences(
                [c for c in codecs if c.mimeType in (wanted, f"{transceiver.kind}/rtx")]
            )
            self.pc.addTrack(track)
            if isinstance(track, LessonVideoTrack):
                # Picture loss: aiortc would ask an encoder for a keyframe; ours is the file.
                transceiver.sender._send_keyframe = track.request_keyframe
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def trickle(self, fragment: str, policy: RemotePolicy) -> int:
        """Add the candidates of an `application/trickle-ice-sdpfrag` body; returns how many."""
        added = 0
        for line in fragment.splitlines():
            if not line.startswith("a=candidate:"):
                continue
            host = candidate_host(line)
            if host is None:
                raise BadSdp(f"malformed candidate line: {line[:80]!r}")
            if not policy.allows(host):
                continue
            try:
                candidate = candidate_from_sdp(line[2:].split(":", 1)[1])
            except (ValueError, IndexError) as exc:
                raise BadSdp(f"malformed candidate line: {exc}") from None
            transceivers = self.pc.getTransceivers()
            candidate.sdpMid = transceivers[0].mid if transceivers else "0"
            await self.pc.addIceCandidate(candidate)
            added += 1
        return added

    async def close(self) -> None:
        self.gone = True
        for track in self.tracks:
            track.stop()
        await self.pc.close()


def new_viewer(
    *, user: str, name: str, path: Path, clock: PlaybackClock, kinds: set[str]
) -> Viewer:
    tracks: list[LessonTrack] = []
    if "video" in kinds:
        tracks.append(LessonVideoTrack(path, clock))
    if "audio" in kinds and has_audio(path):
        tracks.append(LessonAudioTrack(path, clock))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    return Viewer(user=user, name=name, pc=pc, tracks=tracks)
