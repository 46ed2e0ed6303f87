"""One peer connection at the room's home, whichever way its media flows: a WHEP viewer, a WHIP
publisher, a talk-back speaker or listener. What they share: answering the offer with only
allowed candidates, trickle ICE, closing."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from server.errors import BadSdp
from server.media.ice import RemotePolicy, candidate_host, filter_candidates

log = logging.getLogger(__name__)

_MEDIA_LINE = re.compile(r"^m=(audio|video) ", re.MULTILINE)


def offered_kinds(sdp: str) -> set[str]:
    """The kinds of media in an SDP offer; BadSdp naming what makes it unusable."""
    if not sdp.startswith("v=0"):
        raise BadSdp("the body is not an SDP offer (it must start with v=0)")
    kinds = set(_MEDIA_LINE.findall(sdp))
    if not kinds:
        raise BadSdp("the offer has no audio or video media section")
    if "a=ice-ufrag:" not in sdp:
        raise BadSdp("the offer has no ICE credentials (a=ice-ufrag)")
    return kinds


def require_codecs(sdp: str, kinds: set[str], video: tuple[str, ...] = ("VP8",)) -> None:
    """Media is passed through as sent: the offer must carry one of the `video` codecs and
    Opus. Stored lessons are VP8; a live lesson is VP8 or H.264, as its publisher sends it."""
    if "video" in kinds and not any(f"{name}/90000" in sdp for name in video):
        names = " or ".join(video)
        raise BadSdp(f"the offer has no {names} video (media is passed through as sent)")
    if "audio" in kinds and "opus/48000" not in sdp.lower():
        raise BadSdp("the offer has no Opus audio")


def prefer_codec(transceiver: Any, wanted: tuple[str, ...]) -> str:
    """Answer with the first of the `wanted` mime types the offer has (and its retransmissions)
    and nothing else; returns the one chosen. aiortc picked the common codecs when the offer
    was set, so they are narrowed here too: preferences alone would only apply to a later
    negotiation."""
    kind = transceiver.kind
    offered = {c.mimeType.lower() for c in transceiver._codecs}
    chosen = next((m for m in wanted if m.lower() in offered), None)
    if chosen is None:
        raise BadSdp(f"the offer's {kind} has none of {', '.join(wanted)}")
    keep = [c for c in transceiver._codecs if c.mimeType.lower() == chosen.lower()]
    payloads = {c.payloadType for c in keep}
    rtx = [
        c
        for c in transceiver._codecs
        if c.mimeType.lower() == f"{kind}/rtx" and c.parameters.get("apt") in payloads
    ]
    transceiver._codecs = keep + rtx
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    transceiver.setCodecPreferences(
        [c for c in codecs if c.mimeType.lower() in (chosen.lower(), f"{kind}/rtx")]
    )
    return chosen


@dataclass(eq=False)
class Peer:
    user: str
    name: str
    pc: Any = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    created: float = field(default_factory=time.monotonic)
    gone: bool = False

    @property
    def connected(self) -> bool:
        return bool(self.pc.connectionState == "connected")

    async def answer(
        self, offer: str, policy: RemotePolicy, prepare: Callable[[list[Any]], None]
    ) -> str:
        """Answer `offer`; `prepare` sets up the transceivers the offer made (tracks, codecs)
        before the answer is written."""
        sdp, dropped = filter_candidates(offer, policy)
        if dropped:
            log.info(
                "peer %s: dropped %d candidates outside the allowed networks", self.id, dropped
            )
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except (ValueError, KeyError, IndexError) as exc:
            raise BadSdp(f"the offer could not be used: {exc}") from None
        prepare(self.pc.getTransceivers())
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

    def stop_media(self) -> None:
        """Stop what this peer sends or takes in; subclasses say what."""

    async def close(self) -> None:
        self.gone = True
        self.stop_media()
        await self.pc.close()
