"""The conversation's media child (DESIGN §3): the only code that decodes or encodes the
conversation's audio, run as `python -m server.media.mixing --parent PID` by
server/media/mixer.py, so that a crash in libopus ends this process, never the server.

stdin carries the parent's messages, stdout this child's (length-prefixed MessagePack, the
message types of server/media/mixer.py). Talkers' Opus frames are decoded as they arrive; the
voice detector (server/media/vad.py) reads each talker's own audio then, and only its times
leave this process. A 20 ms clock takes one block from each talker's jitter buffer and mixes,
for each listener, every talker of the room but the listener itself and the talker it excludes.
Listeners that hear the same talkers share one encoding. Only talkers' audio is ever mixed: a
frame of anyone who did not join as a talker of that room is counted and dropped. Nothing is
written anywhere but stdout (the mixes, the times, the counts) and stderr (what went wrong).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from fractions import Fraction
from typing import Any

import av
import av.error
import msgspec
import numpy as np
from av.audio.frame import AudioFrame

from server.lifeline import die_with_parent
from server.media import vad
from server.media.jitter import JitterBuffer
from server.media.mixing_wire import (
    MAX_OPUS,
    Frame,
    FromChild,
    Join,
    Leave,
    Listen,
    Mixed,
    Speaking,
    Speech,
    Stats,
    ToChild,
    Unlisten,
    frame,
    read_message,
)

RATE = vad.RATE
BLOCK = vad.BLOCK  # 20 ms: the clock's tick, the mixes' frame
TICK = BLOCK / RATE
TIME_BASE = Fraction(1, RATE)
BITRATE = 32_000
# libopus's complexity 5 and its low-delay mode (CELT only, 2.5 ms look-ahead) cost about 60 %
# of the default's CPU per frame, which is what lets 80 mixes fit in a core with room to spare.
ENCODER_OPTIONS = {"application": "lowdelay", "compression_level": "5"}
# A 20 ms Opus frame of silence (CELT, fullband, mono): what SFUs send instead of encoding it.
SILENCE = b"\xf8\xff\xfe"
# Discontinuous transmission of silence: DTX_AFTER silent frames after talk, then one every
# DTX_EVERY ticks (400 ms, what Opus DTX sends). Most of a conversation is one person talking,
# so most listeners hear nobody most of the time: 20 ms packets of silence to each of them
# were a third of the server's packets.
DTX_AFTER = 3
DTX_EVERY = 20
ENCODER_IDLE = 250  # ticks: an encoder unused this long is closed (a new mix starts afresh)
SLOTS = 10  # parts of a tick: the rooms are spread over them
SLOT = TICK / SLOTS
STATS_EVERY = 50  # ticks: the Stats message, also the parent's sign of life
MAX_BEHIND = 3  # ticks the clock may be behind before it skips ahead instead of catching up

Pcm = vad.Pcm


def to_pcm(decoded: Any) -> Pcm:
    """A decoded AudioFrame as mono int16 samples, whatever layout and format it came in."""
    samples = decoded.to_ndarray()
    if not decoded.format.is_planar:  # packed: channels interleaved in one row
        samples = samples.reshape(-1, len(decoded.layout.channels)).T
    if samples.dtype != np.int16:  # float formats, full scale 1.0
        samples = np.clip(samples * 32768.0, -32768, 32767)
    mono = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
    return np.asarray(mono, dtype=np.int16)


class Talker:
    """One talker's decoder, jitter buffer and voice detector."""

    def __init__(self) -> None:
        self._decoder: Any = av.CodecContext.create("libopus", "r")
        self._decoder.sample_rate = RATE
        self._decoder.layout = "mono"  # libopus downmixes a stereo-flagged packet
        self.buffer = JitterBuffer()
        self.detector = vad.VoiceDetector()
        self.undecodable = 0

    def push(self, opus: bytes, arrived: float) -> list[vad.VoiceEvent]:
        try:
            decoded = self._decoder.decode(av.Packet(opus)) if opus else []
        except (av.error.FFmpegError, ValueError):
            self.undecodable += 1  # not Opus: skipped, the talker's next frame may be
            return []
        events: list[vad.VoiceEvent] = []
        for one in decoded:
            pcm = to_pcm(one)
            self.buffer.put(pcm, arrived)
            events += self.detector.push(pcm, arrived)
        return events


class MixEncoder:
    """The Opus encoder of one mix: one set of talkers heard."""

    def __init__(self) -> None:
        self._encoder: Any = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = RATE
        self._encoder.layout = "mono"
        self._encoder.format = "s16"
        self._encoder.bit_rate = BITRATE
        self._encoder.time_base = TIME_BASE
        self._encoder.options = dict(ENCODER_OPTIONS)
        self._encoder.open()
        self._pts = 0
        self.used = 0  # the tick it last encoded

    def encode(self, pcm: Pcm) -> bytes | None:
        """One frame; None if the encoder gave nothing this time."""
        block = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        block.sample_rate = RATE
        block.pts = self._pts
        self._pts += BLOCK
        packets = self._encoder.encode(block)
        return bytes(packets[0]) if packets else None


def mix(blocks: list[Pcm]) -> Pcm:
    """The sum of the blocks, clipped to 16 bits."""
    if len(blocks) == 1:
        return blocks[0]
    total = np.add(blocks[0], blocks[1], dtype=np.int32)
    for block in blocks[2:]:
        total += block
    return np.clip(total, -32768, 32767).astype(np.int16)


class MixRoom:
    """One room's conversation: its talkers, its listeners, the encoders of its mixes.

    A mix is named by the talkers in it: those of the room that are audible now (vad's
    `heard`), less the listener itself and the talker it excludes. Listeners whose mixes
    hold the same talkers get the same packets, so in a room where one person talks at a time
    one encoding serves everybody (the talker hears silence, a constant packet, sent as DTX
    sends it); the mixes that differ are encoded once each."""

    def __init__(self, name: str, slot: int = 0) -> None:
        self.name = name
        self.slot = slot  # its part of the tick (see `clock`)
        self.talkers: dict[str, Talker] = {}
        self.listeners: dict[str, str | None] = {}  # listener -> the talker it does not hear
        self._encoders: dict[frozenset[str], MixEncoder] = {}
        self._ticks = 0
        self._quiet: dict[str, int] = {}  # listener -> ticks since it last heard anybody

    def tick(self, timestamp: int, counts: dict[str, int]) -> list[Mixed]:
        self._ticks += 1
        audible = self._audible()
        mixes: list[Mixed] = []
        for heard, listeners in self._mixes(audible).items():
            if not heard:
                listeners = self._due_silence(listeners)
                if not listeners:
                    continue
            for listener in listeners:
                self._quiet[listener] = 0 if heard else self._quiet.get(listener, 0) + 1
            opus = self._encode(heard, audible) if heard else SILENCE
            if opus is None:
                continue
            counts["encoded" if heard else "silent"] += 1
            arrived = min((audible[name][1] for name in heard), default=0.0)
            mixes.append(Mixed(self.name, sorted(listeners), opus, timestamp, arrived))
        if self._ticks % ENCODER_IDLE == 0:
            self._forget_idle_encoders()
        return mixes

    def forget(self, listener: str) -> None:
        self._quiet.pop(listener, None)

    def _due_silence(self, listeners: list[str]) -> list[str]:
        """Those who hear nobody and are owed a silence packet now: the first few after
        talk (the decoder ends it cleanly), then one every DTX_EVERY ticks, as a sender doing
        Opus DTX does (RFC 7587 §3.1.3). The others' quiet ticks are counted unsent."""
        due: list[str] = []
        for listener in listeners:
            quiet = self._quiet.get(listener, 0)
            if quiet < DTX_AFTER or quiet % DTX_EVERY == 0:
                due.append(listener)
            else:
                self._quiet[listener] = quiet + 1
        return due

    def _audible(self) -> dict[str, tuple[Pcm, float]]:
        """This tick's block of every talker who is audible: (samples, arrived)."""
        audible: dict[str, tuple[Pcm, float]] = {}
        for name, talker in self.talkers.items():
            # Taken from everyone, heard or not, so that every buffer stays short.
            pcm, arrived = talker.buffer.take(talker.detector.heard)
            if pcm is not None and talker.detector.heard(arrived):
                audible[name] = (pcm, arrived)
        return audible

    def _mixes(self, audible: dict[str, tuple[Pcm, float]]) -> dict[frozenset[str], list[str]]:
        """Listeners by the talkers they hear now: never themselves (a listener named as a
        talker is that talker), never the talker they exclude."""
        mixes: dict[frozenset[str], list[str]] = {}
        for listener, exclude in self.listeners.items():
            heard = frozenset(n for n in audible if n != listener and n != exclude)
            mixes.setdefault(heard, []).append(listener)
        return mixes

    def _encode(self, heard: frozenset[str], audible: dict[str, tuple[Pcm, float]]) -> bytes | None:
        encoder = self._encoders.get(heard)
        if encoder is None:
            encoder = self._encoders[heard] = MixEncoder()
        encoder.used = self._ticks
        return encoder.encode(mix([audible[name][0] for name in sorted(heard)]))

    def _forget_idle_encoders(self) -> None:
        for heard, encoder in list(self._encoders.items()):
            if self._ticks - encoder.used >= ENCODER_IDLE:
                del self._encoders[heard]


class Mixing:
    """The child's state and what it does with each message and each tick."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self._rooms: dict[str, MixRoom] = {}
        self._encoder = msgspec.msgpack.Encoder()
        self.counts = {name: 0 for name in Stats.__struct_fields__}

    def handle(self, message: ToChild) -> None:
        match message:
            case Frame(room, talker, opus, arrived):
                self._frame(room, talker, opus, arrived)
            case Join(room, talker):
                self._room(room).talkers.setdefault(talker, Talker())
            case Leave(room, talker):
                self._leave(room, talker)
            case Listen(room, listener, exclude):
                self._room(room).listeners[listener] = exclude
            case Unlisten(room, listener):
                if room in self._rooms:
                    self._rooms[room].listeners.pop(listener, None)
                    self._rooms[room].forget(listener)
                    self._forget_if_empty(room)

    def tick(self, slot: int, timestamp: int, now: float) -> None:
        """The rooms of this slot of the tick mix; what they say goes out in one write."""
        messages: list[FromChild] = []
        for room in [r for r in self._rooms.values() if r.slot == slot]:
            messages += room.tick(timestamp, self.counts)
            for name, talker in room.talkers.items():
                if talker.detector.speaking:
                    messages += self._events(room.name, name, talker.detector.idle(now))
        self._say(messages)

    def stats(self) -> None:
        counts = dict(self.counts)  # those of talkers who left, plus those of the others
        for room in self._rooms.values():
            for talker in room.talkers.values():
                self._add_counts(counts, talker)
        self._say([Stats(**counts)])

    @staticmethod
    def _add_counts(counts: dict[str, int], talker: Talker) -> None:
        counts["concealed"] += talker.buffer.underruns
        counts["trimmed"] += talker.buffer.trimmed
        counts["undecodable"] += talker.undecodable

    def _frame(self, room: str, name: str, opus: bytes, arrived: float) -> None:
        self.counts["frames"] += 1
        talker = self._rooms[room].talkers.get(name) if room in self._rooms else None
        if talker is None or len(opus) > MAX_OPUS:
            self.counts["strangers"] += 1
            return
        self._say(self._events(room, name, talker.push(opus, arrived)))

    def _leave(self, room: str, name: str) -> None:
        talker = self._rooms[room].talkers.pop(name, None) if room in self._rooms else None
        if talker is None:
            return
        self._add_counts(self.counts, talker)
        self._say(self._events(room, name, talker.detector.close()))
        self._forget_if_empty(room)

    def _room(self, name: str) -> MixRoom:
        room = self._rooms.get(name)
        if room is None:
            load = [0] * SLOTS
            for other in self._rooms.values():
                load[other.slot] += 1
            room = self._rooms[name] = MixRoom(name, slot=load.index(min(load)))
        return room

    def _forget_if_empty(self, name: str) -> None:
        room = self._rooms[name]
        if not room.talkers and not room.listeners:
            del self._rooms[name]

    def _events(self, room: str, talker: str, events: list[vad.VoiceEvent]) -> list[FromChild]:
        found: list[FromChild] = []
        for event in events:
            match event:
                case vad.Speaking(on, at):
                    found.append(Speaking(room, talker, on, at))
                case vad.Stretch(start, end):
                    found.append(Speech(room, talker, start, end))
        return found

    def _say(self, messages: list[FromChild]) -> None:
        if messages:
            self._out.write(b"".join(frame(m, self._encoder) for m in messages))
            self._out.flush()  # a blocking write: a parent that does not read stops the clock


async def clock(mixing: Mixing) -> None:
    """Tick every 20 ms on a fixed grid, each room in its own slot of the tick (so the work is
    spread over the 20 ms and the talkers' frames are read between rooms, not after all of
    them). The RTP timestamp counts 48 kHz from the system's monotonic clock, so a child
    started after a crash goes on from where time is."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    base = int(start * RATE)
    step = 0  # slots since the start
    while True:
        step += 1
        delay = start + step * SLOT - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -MAX_BEHIND * TICK:  # far behind: skip, the listeners hear a gap
            skipped = int(-delay / SLOT)
            step += skipped
            # Rounded up: no room misses more mixes than this, so a listener's gap is at most
            # DTX's plus the late ticks (tests rely on that); skipped // SLOTS could say 0.
            mixing.counts["late_ticks"] += -(-skipped // SLOTS)
        else:
            await asyncio.sleep(0)  # let the frames that came meanwhile in first
        tick, slot = divmod(step, SLOTS)
        mixing.tick(slot, (base + tick * BLOCK) & 0xFFFFFFFF, time.time())
        if step % (STATS_EVERY * SLOTS) == 0:
            mixing.stats()


async def serve(mixing: Mixing) -> None:
    """Handle the parent's messages until its side of stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    decoder = msgspec.msgpack.Decoder(ToChild)
    async with asyncio.TaskGroup() as group:
        ticking = group.create_task(clock(mixing))
        while (body := await read_message(reader)) is not None:
            mixing.handle(decoder.decode(body))
        ticking.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.media.mixing")
    parser.add_argument("--parent", type=int, default=0, help="die when this process dies")
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority")
    args = parser.parse_args(argv)
    if args.parent:
        die_with_parent(args.parent)
    if args.nice:
        os.nice(args.nice)
    failure: str | None = None
    try:
        asyncio.run(serve(Mixing(sys.stdout.buffer)))
    except* (msgspec.DecodeError, ValueError) as group:
        # The parent's stream is out of step (TooLong is a ValueError): say why, and let the
        # parent start a child from its whole state.
        failure = repr(group.exceptions[0])
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
