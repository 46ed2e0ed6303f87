"""The conversation's rules (server/rooms/voice.py) with no event loop: who may speak, what the
others see of each member's microphone, what a new home forgets, and the clock that dates speech."""

from __future__ import annotations

import itertools

import msgspec
import pytest

from server.media.voice_peer import SpeechClock
from server.messages import AllowSpeak, Error, MemberUpdated, Mute, VoiceInfo, Welcome
from server.rooms.effects import Broadcast, Effect, EndVoice, Persist, Send
from server.rooms.events import ChangeVoice, ControlVoice, Join, Leave
from server.rooms.roles import Role
from server.rooms.room import Room
from server.rooms.voice import VoiceState, may_speak
from tests.test_rooms_pure import member


def updates(effects: list[Effect]) -> list[tuple[str, VoiceInfo, bool]]:
    """(member id, voice, speak) of each member_updated broadcast."""
    return [
        (e.message.member.id, e.message.member.voice, e.message.member.speak)
        for e in effects
        if isinstance(e, Broadcast) and isinstance(e.message, MemberUpdated)
    ]


def room() -> Room:
    r = Room("r", "Room")
    r.handle(Join(member("c", Role.COACH), 1.0))
    r.handle(Join(member("t", Role.TEACHER), 1.0))
    r.handle(Join(member("o", Role.OBSERVER), 1.0))
    return r


def test_the_home_media_reports_a_session_and_speech() -> None:
    r = room()
    assert updates(r.handle(ChangeVoice("user:t", True, False, False, 2.0))) == [
        ("t", VoiceInfo(mic=True), True)
    ]
    assert updates(r.handle(ChangeVoice("user:t", True, True, True, 2.1))) == [
        ("t", VoiceInfo(mic=True, camera=True, speaking=True), True)
    ]
    assert r.handle(ChangeVoice("user:t", True, True, True, 2.2)) == []  # nothing new
    assert updates(r.handle(ChangeVoice("user:t", False, True, True, 3.0))) == [
        ("t", VoiceInfo(), True)  # a session that ended has no camera and says nothing
    ]


def test_mute_hides_the_mic_and_the_speaking_and_survives_a_rejoin() -> None:
    r = room()
    r.handle(ChangeVoice("user:t", True, False, True, 2.0))
    assert updates(r.handle(ControlVoice("t", Mute(muted=True), 2.1))) == [
        ("t", VoiceInfo(mic=False, speaking=False), True)
    ]
    r.handle(ChangeVoice("user:t", False, False, False, 3.0))
    assert updates(r.handle(ChangeVoice("user:t", True, False, False, 4.0))) == []  # muted
    assert updates(r.handle(ControlVoice("t", Mute(muted=False), 4.1))) == [
        ("t", VoiceInfo(mic=True), True)
    ]


def test_the_coach_lets_an_observer_speak_and_takes_it_back() -> None:
    r = room()
    effects = r.handle(ControlVoice("c", AllowSpeak(user="user:o", allowed=True), 2.0))
    assert updates(effects) == [("o", VoiceInfo(), True)]
    assert Persist() in effects  # the coach's word survives a change of home
    assert r.may_speak("user:o") is True
    effects = r.handle(ControlVoice("c", AllowSpeak(user="user:o", allowed=False), 3.0))
    assert updates(effects) == [("o", VoiceInfo(), False)]
    assert EndVoice("user:o", "the coach took back speaking") in effects
    # A rejoining observer gets the room's word, not its token's.
    r.handle(Leave("o", 4.0))
    r.handle(ControlVoice("c", AllowSpeak(user="user:o", allowed=True), 2.0))  # nobody: refused
    again = msgspec.structs.replace(member("o2", Role.OBSERVER), user="user:o")
    welcome = r.handle(Join(again, 5.0))[0]
    assert isinstance(welcome, Send) and isinstance(welcome.message, Welcome)
    assert welcome.message.you.speak is False and "speak" not in welcome.message.permissions


@pytest.mark.parametrize(
    ("who", "target", "code"),
    [
        ("t", "user:o", "forbidden"),  # a teacher may not
        ("o", "user:o", "forbidden"),  # nor an observer, itself included
        ("c", "user:t", "forbidden"),  # a teacher always may speak
        ("c", "user:nobody", "not_found"),
    ],
)
def test_who_may_allow_speaking(who: str, target: str, code: str) -> None:
    r = room()
    effects = r.handle(ControlVoice(who, AllowSpeak(user=target, allowed=True), 2.0))
    assert len(effects) == 1 and isinstance(effects[0], Send)
    error = effects[0].message
    assert isinstance(error, Error) and error.code == code and error.ref == "allow_speak"
    assert r.may_speak(target) is None


def test_a_new_home_starts_with_no_conversation() -> None:
    r = room()
    r.handle(ChangeVoice("user:t", True, True, True, 2.0))
    r.handle(ControlVoice("c", AllowSpeak(user="user:o", allowed=True), 2.0))
    again = Room("r", "Room", state=r.state)
    assert again.state.voices == {} and again.may_speak("user:o") is True


def test_a_whip_client_without_a_page_leaves_nothing_behind() -> None:
    r = room()
    assert r.handle(ChangeVoice("obs-studio", True, False, False, 2.0)) == []
    r.handle(ChangeVoice("obs-studio", False, False, False, 3.0))
    assert "obs-studio" not in r.state.voices
    assert VoiceState(connected=True, muted=True).info() == VoiceInfo()


@pytest.mark.parametrize(
    ("role", "token", "grant", "may"),
    [
        (Role.COACH, True, None, True),
        (Role.TEACHER, True, False, True),  # only an observer's word can be taken back
        (Role.OBSERVER, False, None, False),
        (Role.OBSERVER, False, True, True),
        (Role.OBSERVER, True, False, False),  # a token's grant, overruled by the coach
        (Role.CAMERA, False, None, False),
    ],
)
def test_may_speak(role: Role, token: bool, grant: bool | None, may: bool) -> None:
    assert may_speak(role, token, grant) is may


def test_the_speech_clock_follows_the_talkers_own_timestamps() -> None:
    clock = SpeechClock()
    start = (1 << 32) - 48_000  # a second before the RTP timestamp wraps
    # Packets 20 ms apart that arrive late and in bursts: their times stay 20 ms apart.
    arrivals = [100.0, 100.02, 100.1, 100.1, 100.1, 100.3]
    times = [clock.when((start + i * 960) % (1 << 32), now) for i, now in enumerate(arrivals)]
    assert [round(b - a, 4) for a, b in itertools.pairwise(times)] == [0.02] * 5
    assert times[0] == 100.0
    # Past the wrap, time goes on.
    later = clock.when((start + 60 * 960) % (1 << 32), 101.2)
    assert abs(later - (100.0 + 60 * 0.02)) < 0.001
