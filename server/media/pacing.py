"""When a packet of the lesson is due, given the room's playback state (DESIGN §3, §4).

Pure functions of the state and a time, so the rules of what a viewer sees are tested without
an event loop. Media time is seconds of video; wall time is server Unix time, as in
`PlaybackInfo.at`.

The frame shown at position p is the last frame whose timestamp is <= p. Every viewer of a room
applies this rule to the same state, which is why two viewers of one room show the same frame.
"""

from __future__ import annotations

import math

from server.messages import PlaybackInfo

# The frame shown at position p is frame floor(p * fps + 0.001) (docs/protocol.md): video times
# are snapped to the frame grid first (WebM stores milliseconds: frame 31 at 30 fps is 1.033 s),
# and compared with this much slack, 0.001 of a frame at 30 fps.
EPSILON = 0.00003
RESEEK_AHEAD = 1.0  # further ahead than this (one keyframe interval), seeking beats reading on
# A playing viewer this far behind the clock (seconds of video, more than the one-second
# keyframe interval of every ingested file) jumps rather than catches up.
RESEEK_LATE = 1.5


def display_position(state: PlaybackInfo, now: float) -> float:
    """The media time the room shows at wall time `now`."""
    if state.status != "playing" or now <= state.at:
        return state.position
    return state.position + (now - state.at) * state.rate


def due_at(state: PlaybackInfo, pts: float) -> float | None:
    """The wall time at which the frame at media time `pts` is shown: -inf for one that is
    shown already (send at once), None for one that is not shown until the state changes."""
    if pts <= state.position + EPSILON:
        return -math.inf
    if state.status != "playing":
        return None
    return state.at + (pts - state.position) / state.rate


def needs_seek(state: PlaybackInfo, now: float, last_sent: float | None) -> bool:
    """Whether a viewer that last sent the frame at `last_sent` must jump (to the keyframe at
    or before the display position) rather than read on."""
    if last_sent is None:
        return True
    target = display_position(state, now)
    return target < last_sent - EPSILON or target - last_sent > RESEEK_AHEAD
