"""A room's conversation at its home (docs/conversation.md): the members' voice sessions, the
listen-only listeners, the cameras, and what the mixing child says of them.

Talkers and listeners are named by user (the token's `sub`): one person, one microphone, and a
second session of the same person replaces the first. Listen-only listeners (WHEP,
`source=voice`) are named by their session, with a NUL first so that no `sub` can be one.
The lesson never reaches the mixer: only a voice session's microphone is a talker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.errors import BadSdp, CamerasFull, NoSpeaking
from server.media.host import MediaHost
from server.media.ice import RemotePolicy
from server.media.mixer import Mixer
from server.media.peer import offered_kinds, require_codecs
from server.media.relay import Relay
from server.media.voice_peer import MixTrack, VoicePeer
from server.sync.audit import Actor

log = logging.getLogger(__name__)

ReportVoice = Callable[[str, bool, bool, bool], None]  # user, connected, camera, speaking
ReportSpeech = Callable[[str, str, str, float, float], None]  # user, name, role, start, end


@dataclass(frozen=True, slots=True)
class Speaker:
    name: str
    role: str
    actor: Actor
    remote: str | None


class Conversation:
    def __init__(
        self,
        host: MediaHost,
        room_id: str,
        policy: RemotePolicy,
        *,
        report_voice: ReportVoice,
        report_speech: ReportSpeech,
    ) -> None:
        self.host = host
        self.room_id = room_id
        self.policy = policy
        self.peers: dict[str, VoicePeer] = {}  # by user
        self.cameras: dict[str, Relay] = {}  # by user
        self._speakers: dict[str, Speaker] = {}
        self._tracks: dict[str, MixTrack] = {}  # by listener
        self._speaking: set[str] = set()
        self._connected: set[str] = set()
        self._report_voice = report_voice
        self._report_speech = report_speech
        self._mixer: Mixer | None = None

    @property
    def busy(self) -> bool:
        return bool(self.peers) or bool(self._tracks)

    def _mix(self) -> Mixer:
        if self._mixer is None:
            self._mixer = self.host.mixes.open(self.room_id, self)
        return self._mixer

    # ---- joining and leaving ------------------------------------------------------------

    async def join(
        self,
        *,
        user: str,
        name: str,
        role: str,
        offer: str,
        allowed: bool,
        actor: Actor,
        remote: str | None,
    ) -> tuple[str, str]:
        """Answer a voice offer; returns the session's id and the answer."""
        if not allowed:
            raise NoSpeaking(f"{name[:64]!r} may not speak in this room's conversation")
        kinds = offered_kinds(offer)
        if "audio" not in kinds:
            raise BadSdp("the offer has no audio section (a voice offer's audio is sendrecv)")
        require_codecs(offer, kinds, video=("VP8", "H264"))
        camera: Relay | None = None
        if "video" in kinds:
            camera = self.cameras.get(user)
            most = self.host.settings.voice_max_cameras
            if camera is None:
                if len(self.cameras) >= most:
                    raise CamerasFull(
                        f"this room already shows {most} cameras; join with your microphone only"
                    )
                camera = Relay("video", 90000, time.time())
        mixer = self._mix()
        track = MixTrack()
        peer = VoicePeer(
            user=user,
            name=name,
            routes={"video": camera} if camera is not None else {},
            spawn=self.host.spawn,
            mix=track,
            on_audio=lambda opus, arrived: mixer.audio(self.room_id, user, opus, arrived),
        )
        peer.pc.on("connectionstatechange", lambda: self._on_change(peer))
        try:
            answer = await peer.answer_offer(offer, self.policy)
        except BaseException:
            await peer.close()
            raise
        old = self.peers.get(user)
        before = self._speakers.get(user)
        self.peers[user] = peer
        self._speakers[user] = Speaker(name, role, actor, remote)
        if camera is not None and peer.sends_camera:
            self.cameras[user] = camera
            camera.begin(peer.request_keyframe)
        else:
            self._drop_camera(user)
        mixer.talker(self.room_id, user)
        if peer.hears:
            self._tracks[user] = track
            mixer.listener(self.room_id, user, None)  # everyone but themselves
        else:
            self._tracks.pop(user, None)
            mixer.drop_listener(self.room_id, user)
        if old is not None:
            log.info("room %s: %s's voice session %s replaced", self.room_id, user, old.id)
            if before is not None:
                self._audit_leave(before, old, "replaced")
            await old.close()
            self._report(user)
        self.host.audit.record(
            "voice.join",
            actor,
            room=self.room_id,
            remote=remote,
            session=peer.id,
            camera=peer.sends_camera,
        )
        return peer.id, answer

    def listen(self, listener: str) -> MixTrack:
        """A listen-only track (WHEP `source=voice`): everybody who talks."""
        name = f"\0{listener}"
        mixer = self._mix()
        track = MixTrack(on_stop=lambda: self._unlisten(name))
        self._tracks[name] = track
        mixer.listener(self.room_id, name, None)
        return track

    def _unlisten(self, name: str) -> None:
        self._tracks.pop(name, None)
        if self._mixer is not None:
            self._mixer.drop_listener(self.room_id, name)
        self._forget_if_idle()

    def session(self, session: str) -> VoicePeer | None:
        return next((p for p in self.peers.values() if p.id == session), None)

    async def leave(self, session: str, reason: str = "left") -> None:
        peer = self.session(session)
        if peer is not None:
            await self.end(peer.user, reason)

    async def end(self, user: str, reason: str) -> None:
        """End `user`'s voice session, if they have one."""
        peer = self.peers.pop(user, None)
        if peer is None:
            return
        self._tracks.pop(user, None)
        self._drop_camera(user)
        if self._mixer is not None:
            self._mixer.leave(self.room_id, user)
            self._mixer.drop_listener(self.room_id, user)
        self._speaking.discard(user)
        self._connected.discard(user)
        speaker = self._speakers.pop(user, None)
        self._report_voice(user, False, False, False)
        log.info("room %s: %s left the conversation (%s)", self.room_id, user, reason)
        if speaker is not None:
            self._audit_leave(speaker, peer, reason)
        await peer.close()
        self._forget_if_idle()

    def _audit_leave(self, speaker: Speaker, peer: VoicePeer, reason: str) -> None:
        self.host.audit.record(
            "voice.leave",
            speaker.actor,
            room=self.room_id,
            remote=speaker.remote,
            session=peer.id,
            reason=reason,
            seconds=round(time.monotonic() - peer.created, 1),
        )

    def _drop_camera(self, user: str) -> None:
        camera = self.cameras.pop(user, None)
        if camera is not None:
            camera.end()

    def _forget_if_idle(self) -> None:
        if not self.busy and self._mixer is not None:
            self.host.mixes.close(self.room_id, self)
            self._mixer = None

    async def close(self) -> None:
        for user in list(self.peers):
            await self.end(user, "home stopping")
        for track in list(self._tracks.values()):
            track.stop()

    # ---- the peers' connections ---------------------------------------------------------

    def _on_change(self, peer: VoicePeer) -> None:
        if self.peers.get(peer.user) is not peer:
            return  # replaced
        state = peer.pc.connectionState
        if state == "connected" and peer.user not in self._connected:
            self._connected.add(peer.user)
            self._report(peer.user)
        elif state in ("failed", "closed"):
            self.host.spawn(self.end(peer.user, state), f"voice end {self.room_id}")

    async def sweep(self, now: float) -> None:
        """End the sessions whose connection failed or never came up."""
        timeout = self.host.settings.media_connect_timeout
        for user, peer in list(self.peers.items()):
            state = peer.pc.connectionState
            if state in ("failed", "closed"):
                await self.end(user, state)
            elif state != "connected" and now - peer.created > timeout:
                await self.end(user, "never connected")

    def _report(self, user: str) -> None:
        peer = self.peers.get(user)
        connected = peer is not None and user in self._connected
        camera = connected and user in self.cameras
        self._report_voice(user, connected, camera, user in self._speaking)

    # ---- what the mixing child says ------------------------------------------------------

    def mixed(self, listener: str, opus: bytes, timestamp: int) -> None:
        track = self._tracks.get(listener)
        if track is not None:
            track.put(opus, timestamp)

    def speaking(self, talker: str, on: bool) -> None:
        if talker not in self.peers:
            return
        (self._speaking.add if on else self._speaking.discard)(talker)
        self._report(talker)

    def speech(self, talker: str, start: float, end: float) -> None:
        speaker = self._speakers.get(talker)
        if speaker is not None and end > start:
            self._report_speech(talker, speaker.name, speaker.role, start, end)
