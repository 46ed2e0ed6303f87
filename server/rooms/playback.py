"""The playback clock (DESIGN §4): one ordered state per room, extrapolated by every viewer.

`position` holds at server time `at`; while playing, the position at time t is
`position + (t - at) * rate`. A play is scheduled `lead` seconds ahead so that every viewer,
whatever its latency to the home, can start on the same frame.
"""

from __future__ import annotations

import msgspec

from server.errors import InvalidField
from server.messages import Pause, Play, PlaybackInfo, PlaybackIntent, Rate, Seek

RATE_MIN = 0.25
RATE_MAX = 2.0


class PlaybackRules(msgspec.Struct, frozen=True):
    lead: float = 0.2  # seconds between accepting a play and the moment everyone starts


def position_at(state: PlaybackInfo, now: float) -> float:
    if state.status != "playing" or now <= state.at:
        return state.position
    return state.position + (now - state.at) * state.rate


def apply_intent(
    state: PlaybackInfo,
    intent: PlaybackIntent,
    *,
    by: str,
    now: float,
    rules: PlaybackRules,
    duration: float | None,
) -> PlaybackInfo:
    """The next state after `intent`, or InvalidField naming what was out of range."""
    position = position_at(state, now)
    if duration is not None:
        position = min(position, duration)
    seq = state.seq + 1
    match intent:
        case Play():
            if state.status == "playing":
                return state
            if duration is not None and position >= duration:
                position = 0.0  # play at the end starts the lesson again, as players do
            return msgspec.structs.replace(
                state,
                status="playing",
                position=position,
                at=now + rules.lead,
                seq=seq,
                by=by,
                waiting_for=[],
            )
        case Pause():
            if state.status == "paused":
                return state
            return msgspec.structs.replace(
                state, status="paused", position=position, at=now, seq=seq, by=by, waiting_for=[]
            )
        case Seek(position=target):
            if not target >= 0.0:  # also refuses NaN
                raise InvalidField("seek.position must be a number of seconds >= 0")
            if duration is not None and target > duration:
                raise InvalidField(
                    f"seek.position {target:.3f} is past the end of the video ({duration:.3f} s)",
                    ref="seek",
                )
            at = now + rules.lead if state.status == "playing" else now
            return msgspec.structs.replace(state, position=target, at=at, seq=seq, by=by)
        case Rate(rate=rate):
            if not RATE_MIN <= rate <= RATE_MAX:
                raise InvalidField(
                    f"rate.rate must be between {RATE_MIN} and {RATE_MAX}, got {rate}"
                )
            return msgspec.structs.replace(
                state, position=position, at=now, rate=rate, seq=seq, by=by
            )
