"""One WHEP viewer at the room's home: its peer connection and the tracks it is sent, either
its own pair of lesson tracks (a recorded lesson) or copies of the room's live relays."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack

from server.media.clock import PlaybackClock
from server.media.ice import RemotePolicy
from server.media.peer import Peer, offered_kinds, prefer_codec, require_codecs
from server.media.relay import Relay, RelayTrack
from server.media.tracks import LessonAudioTrack, LessonVideoTrack, has_audio


def check_offer(sdp: str, video: str = "VP8") -> set[str]:
    """The kinds of media a viewer's offer asks for, which must include receiving `video` (the
    codec it will be sent); BadSdp naming what is wrong with it."""
    kinds = offered_kinds(sdp)
    require_codecs(sdp, kinds, video=(video,))
    return kinds


@dataclass(eq=False)
class Viewer(Peer):
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    source: str = "video"  # "video" (a recorded lesson), "live" or "talkback"

    async def answer_offer(self, offer: str, policy: RemotePolicy) -> str:
        return await self.answer(offer, policy, self._prepare)

    def _prepare(self, transceivers: list[Any]) -> None:
        unsent = list(self.tracks)
        for transceiver in transceivers:
            track = next((t for t in unsent if t.kind == transceiver.kind), None)
            if track is None or transceiver.direction not in ("recvonly", "sendrecv"):
                continue
            unsent.remove(track)
            default = "video/VP8" if track.kind == "video" else "audio/opus"
            prefer_codec(transceiver, (getattr(track, "codec", default),))
            self.pc.addTrack(track)
            # Picture loss: aiortc would ask its encoder for a key frame; ours is the file or
            # the publisher, which the track knows how to ask.
            request = getattr(track, "request_keyframe", None)
            if track.kind == "video" and request is not None:
                transceiver.sender._send_keyframe = request

    def stop_media(self) -> None:
        for track in self.tracks:
            track.stop()


def lesson_viewer(
    *, user: str, name: str, path: Path, hold: bytes, clock: PlaybackClock, kinds: set[str]
) -> Viewer:
    tracks: list[MediaStreamTrack] = []
    if "video" in kinds:
        tracks.append(LessonVideoTrack(path, clock, hold))
    if "audio" in kinds and has_audio(path):
        tracks.append(LessonAudioTrack(path, clock))
    return Viewer(user=user, name=name, tracks=tracks)


def relay_viewer(*, user: str, name: str, relays: list[Relay], source: str) -> Viewer:
    return Viewer(user=user, name=name, tracks=[RelayTrack(r) for r in relays], source=source)
