"""A peer that sends media in: the classroom publishing the live lesson (WHIP), or a coach's
microphone for talk-back. Its encoded frames go straight to the room's relays (frames.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from server.errors import BadSdp
from server.media.frames import tap_receiver
from server.media.ice import RemotePolicy
from server.media.peer import Peer, prefer_codec
from server.media.relay import Relay, RelayTrack

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]
LIVE_CODECS = {"video": ("video/VP8", "video/H264"), "audio": ("audio/opus",)}


@dataclass(eq=False)
class Publisher(Peer):
    """`routes` maps a kind to the relay its frames feed; `earpiece`, if set, is played back
    on the publisher's own audio when it offered to receive (sendrecv): the classroom device
    then needs no second connection to hear the coach."""

    routes: dict[str, Relay] = field(default_factory=dict)
    earpiece: Relay | None = None
    spawn: Spawn | None = None
    earpiece_track: RelayTrack | None = None
    _video_receiver: Any = None

    async def answer_offer(self, offer: str, policy: RemotePolicy) -> str:
        return await self.answer(offer, policy, self._prepare)

    def _prepare(self, transceivers: list[Any]) -> None:
        fed: set[str] = set()
        for transceiver in transceivers:
            kind = transceiver.kind
            relay = self.routes.get(kind)
            # aiortc keeps the offer's direction reversed, as seen from here
            sends = transceiver._offerDirection in ("recvonly", "sendrecv")
            if relay is None or kind in fed or not sends:
                transceiver.direction = "inactive"
                continue
            fed.add(kind)
            # VP8 first: what the library stores. H.264 for publishers that send nothing
            # else (OBS Studio); it is recorded and relayed as sent.
            chosen = prefer_codec(transceiver, LIVE_CODECS[kind])
            relay.codec = chosen.lower()
            tap_receiver(transceiver.receiver, kind, relay.push)
            if kind == "video":
                self._video_receiver = transceiver.receiver
            if (
                kind == "audio"
                and self.earpiece is not None
                and transceiver._offerDirection == "sendrecv"
            ):
                self.earpiece_track = RelayTrack(self.earpiece)
                self.pc.addTrack(self.earpiece_track)
            else:
                transceiver.direction = "recvonly"
        if not fed:
            wanted = " and ".join(sorted(self.routes))
            raise BadSdp(f"the offer sends no {wanted} (WHIP offers are sendonly or sendrecv)")

    def request_keyframe(self) -> None:
        """Send the publisher a picture-loss report (RFC 4585 §6.3.1): its encoder answers with
        a key frame, which a viewer that just joined needs to start."""
        receiver = self._video_receiver
        if receiver is None or self.spawn is None or self.gone:
            return
        for source in receiver.getSynchronizationSources():
            self.spawn(receiver._send_rtcp_pli(source.source), f"pli {self.id}")

    def stop_media(self) -> None:
        if self.earpiece_track is not None:
            self.earpiece_track.stop()
