"""The conversation's mixing child (server/media/mixing.py) driven through its parent,
server/media/mixer.py's Mixer, and through its wire directly: who hears whom, what is never
in a mix, the talk it measures, and what it survives.

The talkers' speech is real speech (espeak-ng, bench/voice.py) encoded to Opus in this
process. To tell voices apart in a mix, each talker's microphone carries a faint pure tone of
its own while it speaks (A 2000 Hz, B 2600 Hz): a mix holds a talker's voice exactly when its
spectrum shows that talker's line. The lesson is a 3300 Hz tone sent as a non-talker's frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pytest

from bench.voice import (
    RATE,
    Conversation,
    Heard,
    Utterance,
    Voice,
    at_level,
    child_ready,
    conversation,
    decode,
    opus_frames,
    running_mixer,
    score,
    send,
    to_int16,
    tone,
)
from server.media import jitter, mixing, vad
from server.media.mixer import FRAME_QUEUE, PACKAGE_ROOT, Mixer
from server.media.mixing_wire import (
    MAX_OPUS,
    Frame,
    FromChild,
    Join,
    Listen,
    Mixed,
    Stats,
    ToChild,
    Unlisten,
    frame,
)
from tests.support import TIMEOUT

VOICES = (Voice("A", "en+f3", -20.0), Voice("B", "en+m3", -24.0))
SCRIPT = (
    (0, 1.0, "So how did you feel the lesson went today"),
    (1, 0.8, "I think it went well but the start was slow"),
    (0, -1.0, "What made it slow"),  # over the end of B's
    (1, 1.0, "The group work took longer than I planned"),
    (0, 0.8, "Good"),
)
MARKS = {"A": 2000.0, "B": 2600.0}
LESSON_HZ = 3300.0
ROOM = "r1"


@dataclass(frozen=True)
class Talk:
    conv: Conversation
    frames: dict[str, list[bytes]]  # talker -> Opus frames of its microphone
    b_talking: list[bytes]  # B's utterances back to back: B talking all along


@pytest.fixture(scope="module")
def talk() -> Talk:
    """Two people's microphones (noise 20 dB and the lesson 20 dB under their voices), each
    marked with its tone while its person speaks."""
    conv = conversation(SCRIPT, VOICES)
    frames: dict[str, list[bytes]] = {}
    spans: list[np.ndarray] = []
    for who, (voice, mic) in enumerate(zip(VOICES, conv.mics, strict=True)):
        marked = mic.astype(np.float64) / 32768.0
        mark = tone(MARKS[voice.name], conv.seconds).astype(np.float64) / 32768.0
        for u in conv.truth:
            if u.who == who:
                span = slice(int(u.start * RATE), int(u.end * RATE))
                marked[span] += at_level(mark[span], voice.level - 8.0)
                spans += [marked[span]] if voice.name == "B" else []
        frames[voice.name] = opus_frames(to_int16(marked))
    return Talk(conv, frames, opus_frames(to_int16(np.concatenate(spans))))


def line_db(pcm: np.ndarray, freq: float) -> float:
    """How far a pure tone at `freq` stands over the spectrum around it (dB)."""
    samples = pcm.astype(np.float64) * np.hanning(pcm.size)
    power = np.abs(np.fft.rfft(samples)) ** 2
    offset = np.abs(np.fft.rfftfreq(pcm.size, 1 / RATE) - freq)
    line = offset < 3.0
    around = float(np.median(power[(offset > 15.0) & (offset < 150.0)])) * int(line.sum())
    return 10 * math.log10(float(power[line].sum()) / max(around, 1e-20) + 1e-20)


def heard_pcm(heard: Heard, listener: str, since: int = 0) -> np.ndarray:
    frames = [opus for opus, _ in heard.mixes.get((ROOM, listener), [])[since:]]
    return decode(frames)


def join_all(mixer: Mixer) -> None:
    for name in MARKS:
        mixer.talker(ROOM, name)
        mixer.listener(ROOM, name, name)  # a talker hears everybody but itself
    mixer.listener(ROOM, "L", None)  # listen-only: everybody


async def wait_until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Late:
    ticks: int  # ticks the child says it missed, up to at least the mixes counted in `seen`
    seen: dict[str, int]  # listener -> mixes heard by then


async def late_ticks(mixer: Mixer, heard: Heard) -> Late:
    """The child's missed ticks, from a report it made after the mixes heard so far."""
    seen = {listener: len(mixes) for (_, listener), mixes in heard.mixes.items()}
    await child_ready(mixer)  # its next report
    return Late(mixer.stats.child.late_ticks, seen)


# ---- who hears whom ---------------------------------------------------------------------


async def test_each_talker_hears_the_other_and_never_itself_nor_the_lesson(talk: Talk) -> None:
    lesson = opus_frames(tone(LESSON_HZ, talk.conv.seconds, -10.0))
    streams = {(ROOM, name): frames for name, frames in talk.frames.items()}
    streams[(ROOM, "lesson")] = lesson  # never joined as a talker: never mixed
    async with running_mixer() as (mixer, heard):
        join_all(mixer)
        await child_ready(mixer)
        await send(mixer, streams, phased=True)
        await asyncio.sleep(0.3)
        assert mixer.stats.strangers == len(lesson)
        assert mixer.stats.restarts == 0 and mixer.stats.dropped == 0
        late = await late_ticks(mixer, heard)
    a, b, listen_only = (heard_pcm(heard, who) for who in ("A", "B", "L"))
    for who, pcm in (("A", a), ("B", b), ("L", listen_only)):
        # The mix goes on all along: a frame every 20 ms while anybody is heard, and silence
        # sent as DTX sends it meanwhile (a frame every 400 ms), never a longer gap but for
        # ticks the child reports it missed (a loaded machine can stall it).
        stamps = [timestamp for _, timestamp in heard.mixes[(ROOM, who)]]
        assert (stamps[-1] - stamps[0]) / RATE > 0.9 * talk.conv.seconds
        longest = max(b - a for a, b in itertools.pairwise(stamps[: late.seen[who]]))
        assert longest <= 960 * (mixing.DTX_EVERY + late.ticks)
        assert line_db(pcm, LESSON_HZ) < 8.0
    assert line_db(a, MARKS["B"]) > 15.0 and line_db(a, MARKS["A"]) < 8.0
    assert line_db(b, MARKS["A"]) > 15.0 and line_db(b, MARKS["B"]) < 8.0
    assert line_db(listen_only, MARKS["A"]) > 15.0 and line_db(listen_only, MARKS["B"]) > 15.0
    # One encoding for listeners who hear the same talkers: while one person talks, the other
    # talker and the listen-only listener get the very same packets.
    by_time: dict[int, dict[str, bytes]] = {}
    for (_, listener), mixes in heard.mixes.items():
        for opus, timestamp in mixes:
            by_time.setdefault(timestamp, {})[listener] = opus
    shared = [t for t, m in by_time.items() if "L" in m and m["L"] == m.get("B") != mixing.SILENCE]
    assert len(shared) > 50


async def test_nothing_but_talkers_is_mixed(talk: Talk) -> None:
    """A room whose only sound is not a talker's: its listener gets silence, and the child
    drops such frames itself too (the parent's check aside)."""
    lesson = opus_frames(tone(LESSON_HZ, 2.0, -10.0))
    async with running_mixer() as (mixer, heard):
        mixer.talker(ROOM, "A")  # joined, but says nothing
        mixer.listener(ROOM, "L", None)
        await child_ready(mixer)
        await send(mixer, {(ROOM, "lesson"): lesson})
        await asyncio.sleep(0.2)
        late = await late_ticks(mixer, heard)
    mixes = heard.mixes[(ROOM, "L")]
    assert {opus for opus, _ in mixes} == {mixing.SILENCE}
    # Silence as DTX sends it: DTX_AFTER frames, then one every DTX_EVERY ticks (later only
    # by ticks the child reports it missed).
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(mixes[: late.seen["L"]])]
    dtx = gaps[mixing.DTX_AFTER :]
    assert dtx and all(gap % 960 == 0 and gap >= 960 * mixing.DTX_EVERY for gap in dtx)
    assert sum(gap - 960 * mixing.DTX_EVERY for gap in dtx) <= 960 * late.ticks
    assert int(np.abs(decode([o for o, _ in mixes])).max()) == 0
    async with raw_child() as child:
        await child.send(Join(ROOM, "A"), Listen(ROOM, "L", None))
        for opus in lesson[:50]:
            await child.send(Frame(ROOM, "lesson", opus, time.time()))
            await child.send(Frame("another room", "A", opus, time.time()))
        stats = await child.until(lambda m: isinstance(m, Stats) and m.strangers == 100)
        assert stats.frames == 100 and stats.encoded == 0
        assert {m.opus for m in child.seen if isinstance(m, Mixed)} == {mixing.SILENCE}


async def test_a_listener_named_as_a_talker_never_hears_itself(talk: Talk) -> None:
    async with raw_child() as child:
        await child.send(Join(ROOM, "A"), Join(ROOM, "B"), Listen(ROOM, "A", None))
        both = zip(talk.frames["A"][150:400], talk.frames["B"][150:400], strict=True)
        for a, b in both:  # A's question over the end of B's answer, in real time
            await child.send(Frame(ROOM, "A", a, time.time()), Frame(ROOM, "B", b, time.time()))
            await asyncio.sleep(0.02)
        stats = await child.until(lambda m: isinstance(m, Stats) and m.frames == 500)
        # The mixes made before that report, whose missed ticks it counts.
        before = next(i for i, m in enumerate(child.seen) if m is stats)
        mixes = [m for m in child.seen[:before] if isinstance(m, Mixed)]
        assert all(m.listeners == ["A"] for m in mixes)
        pcm = decode([m.opus for m in mixes])
        assert line_db(pcm, MARKS["B"]) > 15.0 and line_db(pcm, MARKS["A"]) < 8.0
        stamps = [m.timestamp for m in mixes]
        assert isinstance(stats, Stats)
        longest = 960 * (mixing.DTX_EVERY + stats.late_ticks)  # a stalled child skips ticks
        assert all(
            (b - a) % 960 == 0 and 0 < b - a <= longest for a, b in itertools.pairwise(stamps)
        )
        await child.send(Unlisten(ROOM, "A"))


# ---- who talked when ----------------------------------------------------------------------


async def test_the_talk_found_matches_the_script(talk: Talk) -> None:
    streams = {(ROOM, name): frames for name, frames in talk.frames.items()}
    async with running_mixer() as (mixer, heard):
        for name in MARKS:
            mixer.talker(ROOM, name)
        await child_ready(mixer)
        # Faster than real time: the detector reads the frames' arrival times, not a clock.
        origin = await send(mixer, streams, speed=4.0, origin=time.time() + 0.05)
        await wait_until(lambda: len(heard.speech) >= len(talk.conv.truth), "the stretches")
        await asyncio.sleep(0.2)
        assert mixer.stats.dropped == 0
    names = list(MARKS)
    found = [
        Utterance(names.index(talker), start - origin, end - origin)
        for _, talker, start, end in heard.speech
    ]
    result = score(talk.conv.truth, found, names)
    assert result.stray == []
    assert result.worst_start_error <= 0.3, result.starts
    assert result.worst_talk_error <= 5.0, result.talk
    for name in names:  # the live marker: on, off, on, off...
        marks = [on for _, talker, on in heard.speaking if talker == name]
        assert marks == [True, False] * (len(marks) // 2) and marks


def test_noise_and_a_leaking_lesson_alone_are_no_talk() -> None:
    """The detector itself over 10 s of pink noise and the lesson 20 dB under a voice."""
    detector = vad.VoiceDetector()
    conv = conversation(((0, 10.0, "Yes"),), (Voice("A", "en+f3", -20.0),))
    pcm = decode(opus_frames(conv.mics[0][: 10 * RATE]))
    events: list[vad.VoiceEvent] = []
    for index in range(pcm.size // vad.BLOCK):
        block = pcm[index * vad.BLOCK : (index + 1) * vad.BLOCK]
        events += detector.push(block, (index + 1) * 0.02)
    assert events == []


# ---- what it survives -----------------------------------------------------------------------


async def test_a_killed_child_is_started_again_and_the_conversation_goes_on(
    talk: Talk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "server.media.mixer")
    b_voice = {(ROOM, "B"): talk.b_talking}
    async with running_mixer() as (mixer, heard):
        join_all(mixer)
        await child_ready(mixer)
        sending = asyncio.create_task(send(mixer, b_voice))
        await asyncio.sleep(1.5)
        first = mixer.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: mixer.pid not in (None, first), "a new child")
        before = len(heard.mixes[(ROOM, "A")])
        await sending
        after = heard_pcm(heard, "A", since=before)
        assert mixer.stats.restarts == 1
    # The log says it stopped and why: "signal 9", or, when the event loop's child watcher
    # lost the race to reap it (asyncio: "Unknown child process pid"), "exit status 255".
    stopped = [r.getMessage() for r in caplog.records if "mixing child stopped" in r.getMessage()]
    assert stopped and ("signal 9" in stopped[0] or "status 255" in stopped[0]), caplog.text
    # The new child knew the talkers and listeners: A hears B again, and still not itself.
    assert line_db(after, MARKS["B"]) > 15.0
    assert heard.speaking.count((ROOM, "B", True)) >= 2


async def test_a_flood_of_frames_is_dropped_and_counted_never_blocking(talk: Talk) -> None:
    async with running_mixer() as (mixer, heard):
        join_all(mixer)
        await child_ready(mixer)
        began = time.monotonic()
        for index in range(20_000):
            mixer.audio(ROOM, "B", talk.b_talking[index % 100], time.time())
        assert time.monotonic() - began < 1.0  # it never waited for the child
        assert mixer.stats.dropped >= 20_000 - FRAME_QUEUE
        mixes = sum(len(v) for v in heard.mixes.values())
        missed_before = mixer.stats.child.late_ticks
        await send(mixer, {(ROOM, "B"): talk.b_talking[:100]})
        late = await late_ticks(mixer, heard)
        # Two seconds of B: A and L each hear about 100 mixes, but for ticks a stalled child
        # reports it missed (each costs both of them one).
        missed = late.ticks - missed_before
        assert sum(late.seen.values()) - mixes > max(150 - 2 * missed, 50)
        assert mixer.stats.restarts == 0


async def test_garbage_instead_of_opus_does_not_end_the_conversation(talk: Talk) -> None:
    rng = np.random.default_rng(7)
    garbage = [rng.bytes(int(rng.integers(1, 1200))) for _ in range(300)]
    garbage += [b"", b"\xff" * 10, b"garbage\x00\x01" * 20, bytes(MAX_OPUS + 1)]
    async with running_mixer() as (mixer, heard):
        join_all(mixer)
        await child_ready(mixer)
        for junk in garbage:
            mixer.audio(ROOM, "A", junk, time.time())
        before = len(heard.mixes[(ROOM, "A")])
        await send(mixer, {(ROOM, "B"): talk.b_talking[:100]})
        await asyncio.sleep(1.1)  # a Stats message
        assert mixer.stats.oversized == 1
        assert mixer.stats.child.undecodable > 0
        assert mixer.stats.restarts == 0
        assert line_db(heard_pcm(heard, "A", since=before), MARKS["B"]) > 15.0


async def test_a_child_fed_a_broken_stream_says_why_and_exits() -> None:
    async with raw_child() as child:
        assert child.process.stdin is not None
        child.process.stdin.write((10**9).to_bytes(4, "big"))  # a length past MAX_MESSAGE
        await child.process.stdin.drain()
        assert await asyncio.wait_for(child.process.wait(), TIMEOUT) == 1
        assert child.process.stderr is not None
        assert b"error: TooLong" in await child.process.stderr.read()


def test_the_jitter_buffer_stays_short() -> None:
    buffer = jitter.JitterBuffer()
    always = lambda arrived: True  # noqa: E731
    assert buffer.take(always) == (None, 0.0)
    block = np.ones(vad.BLOCK, dtype=np.int16)
    for index in range(10):  # a burst after a stall: cut to one spare block
        buffer.put(block, float(index))
    assert buffer.buffered == vad.BLOCK and buffer.trimmed == 3
    half = np.ones(vad.BLOCK // 2, dtype=np.int16)
    buffer = jitter.JitterBuffer()
    buffer.put(half, 1.0)
    buffer.put(half, 1.01)
    taken, arrived = buffer.take(always)
    assert taken is not None and taken.size == vad.BLOCK and arrived == 1.01
    buffer.put(half, 1.02)  # short at the tick: the rest is silence
    taken, _ = buffer.take(always)
    assert taken is not None and int(taken[vad.BLOCK // 2 :].max()) == 0
    buffer = jitter.JitterBuffer()  # a block more than the frames' jitter needs: given up
    buffer.put(block, 0.0)
    for index in range(jitter.SHRINK_WINDOW):
        buffer.put(block, 0.02 * (index + 1))
        assert buffer.take(lambda arrived: False)[0] is not None
    assert buffer.buffered == jitter.SPARE_MARGIN


# ---- the child on its wire ------------------------------------------------------------------


@dataclass
class RawChild:
    process: asyncio.subprocess.Process
    seen: list[FromChild]

    async def send(self, *messages: ToChild) -> None:
        assert self.process.stdin is not None
        encoder = msgspec.msgpack.Encoder()
        self.process.stdin.write(b"".join(frame(m, encoder) for m in messages))
        await self.process.stdin.drain()

    async def until(self, check: Callable[[FromChild], bool], timeout: float = TIMEOUT) -> Any:
        assert self.process.stdout is not None
        decoder = msgspec.msgpack.Decoder(FromChild)
        async with asyncio.timeout(timeout):
            while True:
                head = await self.process.stdout.readexactly(4)
                body = await self.process.stdout.readexactly(int.from_bytes(head, "big"))
                message = decoder.decode(body)
                self.seen.append(message)
                if check(message):
                    return message


@contextlib.asynccontextmanager
async def raw_child() -> AsyncIterator[RawChild]:
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.media.mixing",
        "--parent",
        str(os.getpid()),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        yield RawChild(process, [])
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
