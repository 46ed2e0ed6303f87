"""The group wait (DESIGN §4): a stalled viewer holds the room until it can play again.

Viewers report `buffering` and `ready`. While the room plays (or is about to), every viewer
that is *stalled* puts it in `waiting`: the position freezes and `waiting_for` lists who is
waited for. When the last of them is ready, leaves, opts out or runs out of time, the room
plays again, scheduled `lead` ahead like a play.

A viewer is stalled when it reported `buffering` after having been `ready` at least once (a
late joiner still loading never holds anyone), did not opt out with `wait {wait_for_me: false}`,
and was not already given up on in this stall (a viewer that timed out, or that a `play` went
ahead without, is not waited for again until it reports `ready`).

One function, `settle`, makes a playback state agree with the viewers after anything changed,
so every rule above holds whatever the event was.
"""

from __future__ import annotations

import msgspec

from server.messages import PlaybackInfo
from server.rooms.playback import PlaybackRules, position_at, resume


class Viewer(msgspec.Struct, frozen=True):
    """What one member reported about its player. Absent until its first report."""

    wait_for_me: bool = True
    ready_once: bool = False  # reported `ready` since joining
    buffering: bool = False  # its last report was `buffering`
    excused: bool = False  # given up on in this stall: not waited for again until `ready`
    wait_until: float | None = None  # while waited for: when that wait times out

    @property
    def stalled(self) -> bool:
        return self.buffering and self.ready_once and self.wait_for_me and not self.excused


def settle(
    viewers: dict[str, Viewer],
    before: PlaybackInfo,
    after: PlaybackInfo,
    *,
    by: str | None,
    now: float,
    rules: PlaybackRules,
    duration: float | None,
) -> PlaybackInfo:
    """`after` (the state an event led to) made to agree with `viewers`; updates their
    deadlines. A change this makes counts as the event's: one `seq` for both."""
    playback = after
    if after.status != "paused":
        stalled = [m for m in after.waiting_for if m in viewers and viewers[m].stalled]
        stalled += [m for m, v in viewers.items() if v.stalled and m not in stalled]
        if stalled and after.status == "playing":
            position = position_at(after, now)
            if duration is not None:
                position = min(position, duration)
            playback = msgspec.structs.replace(
                after, status="waiting", position=position, at=now, waiting_for=stalled
            )
        elif stalled:
            playback = msgspec.structs.replace(after, waiting_for=stalled)
        elif after.status == "waiting":
            playback = resume(after, by=by, now=now, rules=rules)
    if playback != after and after.seq == before.seq:
        playback = msgspec.structs.replace(playback, seq=before.seq + 1, by=by)
    elif playback != after:
        playback = msgspec.structs.replace(playback, seq=after.seq, by=after.by)
    waited = set(playback.waiting_for)
    for member_id, viewer in viewers.items():
        if member_id in waited and viewer.wait_until is None:
            viewers[member_id] = msgspec.structs.replace(
                viewer, wait_until=now + rules.wait_timeout
            )
        elif member_id not in waited and viewer.wait_until is not None:
            viewers[member_id] = msgspec.structs.replace(viewer, wait_until=None)
    return playback


def excuse(viewers: dict[str, Viewer], member_ids: list[str]) -> None:
    """Stop waiting for these viewers in their current stall."""
    for member_id in member_ids:
        viewer = viewers.get(member_id)
        if viewer is not None:
            viewers[member_id] = msgspec.structs.replace(viewer, excused=True)


def timed_out(viewers: dict[str, Viewer], playback: PlaybackInfo, now: float) -> list[str]:
    """The waited-for viewers whose time is up."""
    return [
        m
        for m in playback.waiting_for
        if (until := viewers.get(m, Viewer()).wait_until) is None or until <= now
    ]
