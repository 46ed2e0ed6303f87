"""The playback clock (DESIGN §4): one ordered state per room, extrapolated by every viewer.

`position` holds at server time `at`; while playing, the position at time t is
`position + (t - at) * rate`. A play is scheduled `lead` seconds ahead so that every viewer,
whatever its latency to the home, can start on the same frame. While `waiting` the position
is frozen, as when paused; `server/rooms/wait.py` has the rules of the group wait.
"""

from __future__ import annotations

import msgspec

from server.errors import Conflict, InvalidField
from server.messages import Pause, Play, PlaybackInfo, PlaybackIntent, Rate, Seek, Step

RATE_MIN = 0.25
RATE_MAX = 2.0
STEP_MAX_FRAMES = 300  # one step moves at most this many frames either way


class PlaybackRules(msgspec.Struct, frozen=True):
    lead: float = 0.2  # seconds between accepting a play and the moment everyone starts
    wait_timeout: float = 5.0  # seconds the room waits for one stalled viewer at most


def position_at(state: PlaybackInfo, now: float) -> float:
    if state.status != "playing" or now <= state.at:
        return state.position
    return state.position + (now - state.at) * state.rate


def resume(
    state: PlaybackInfo, *, by: str | None, now: float, rules: PlaybackRules
) -> PlaybackInfo:
    """From `waiting` to `playing` at the frozen position, scheduled `lead` ahead like a play."""
    return msgspec.structs.replace(
        state, status="playing", at=now + rules.lead, seq=state.seq + 1, by=by, waiting_for=[]
    )


def apply_intent(
    state: PlaybackInfo,
    intent: PlaybackIntent,
    *,
    by: str,
    now: float,
    rules: PlaybackRules,
    duration: float | None,
    fps: float | None = None,
) -> PlaybackInfo:
    """The next state after `intent`, or a ClientError naming what was out of range
    (InvalidField) or why the intent does not fit the state (Conflict)."""
    position = position_at(state, now)
    if duration is not None:
        position = min(position, duration)
    seq = state.seq + 1
    match intent:
        case Play():
            if state.status == "playing":
                return state
            # From `waiting` too: a play overrides the wait and starts everyone now.
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
            # Waiting stays waiting, for the same viewers.
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
        case Step(frames=frames):
            if frames == 0 or abs(frames) > STEP_MAX_FRAMES:
                raise InvalidField(
                    f"step.frames must be a non-zero whole number from {-STEP_MAX_FRAMES} "
                    f"to {STEP_MAX_FRAMES}, got {frames}"
                )
            if state.video is None:
                raise Conflict("step needs a video, and the room has none attached")
            if fps is None:
                raise Conflict(f"step needs the frame rate of video {state.video!r}; it is unknown")
            if state.status != "paused":
                raise Conflict(f"step needs playback paused; it is {state.status}")
            # Not snapped to frame boundaries: n frames are exactly n / fps seconds.
            target = max(0.0, position + frames / fps)
            if duration is not None:
                target = min(target, duration)
            if target == state.position:
                return state  # at an end already
            return msgspec.structs.replace(state, position=target, at=now, seq=seq, by=by)
