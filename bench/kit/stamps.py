"""Notes that carry their send time (bench/fanout.py, bench/soak.py).

A note's text holds `MARK` and a fixed-width placeholder. Its update frame is built before the
run and split around the placeholder (`split`), so sending it is patching in the send time
(`stamped`); the receiver finds every note in the raw update (`stamps`), and its latency is the
receive time minus that (one process, one `time.perf_counter` clock)."""

from __future__ import annotations

from collections.abc import Iterator

MARK = b"sent@"
STAMP_WIDTH = 17  # f"{perf_counter():017.6f}": 10 digits of seconds, '.', microseconds
PLACEHOLDER = b"0" * STAMP_WIDTH


def note_text(label: str, seq: int) -> str:
    """The text of note `seq`, with the placeholder for its send time."""
    return f"{label} {MARK.decode()}{PLACEHOLDER.decode()}#{seq:08d}"


def split(frame: bytes) -> tuple[bytes, bytes]:
    """A frame holding one note's text, without the placeholder: what comes before, after."""
    at = frame.index(MARK + PLACEHOLDER) + len(MARK)
    return frame[:at], frame[at + STAMP_WIDTH :]


def stamped(head: bytes, tail: bytes, now: float) -> bytes:
    return head + b"%017.6f" % now + tail


def stamps(update: bytes) -> Iterator[tuple[int, float]]:
    """Each note's (seq, send time) in `update`. Markers are plain UTF-8 in a v1 update (a map
    value is one ContentAny string), so this finds every note in a frame, however the server
    merged or re-encoded them."""
    find = update.find
    pos = find(MARK)
    while pos != -1:
        start = pos + len(MARK)
        stamp = float(update[start : start + STAMP_WIDTH])
        yield int(update[start + STAMP_WIDTH + 1 : start + STAMP_WIDTH + 9]), stamp
        pos = find(MARK, start)
