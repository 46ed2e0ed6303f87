"""The room's conversation, parent side (DESIGN §3, issue 22): who talks and who listens, the
talkers' Opus frames to the mixing child and its mixes, "speaking" and stretches of talk back.

Mixing and voice detection are codec work, so they run in a child process,
`python -m server.media.mixing` (server/media/mixing.py): a crash in libopus ends that child,
never the server. `Mixer.run` owns the child: one that dies or stops answering is logged and
started again with a bounded backoff, and the conversation (talkers, listeners) is sent to the
new one. No codec is imported here.

The wire: each message is a 4-byte big-endian length, then a MessagePack array whose first item
is the message's tag (msgspec tagged, array-like structs below), at most MAX_MESSAGE bytes.
Parent to child: Join, Leave, Listen, Unlisten, Frame. Child to parent: Mixed, Speaking,
Speech, Stats. A message that is too long or does not decode ends the child (the stream is
out of step); the next child starts from the whole state again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

import server
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
    TooLong,
    Unlisten,
    frame,
    read_message,
)

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(server.__file__).resolve().parent.parent
FRAME_QUEUE = 512  # talker frames waiting for the child: 60 talkers' ~170 ms
CONTROL_QUEUE = 20_000  # joins and leaves waiting for the child; past this it is stuck
ANSWER_WITHIN = 5.0  # seconds: the child says Stats every second; silence this long is a hang
BACKOFF = (0.1, 5.0)  # seconds: first and longest wait before starting a child again
STABLE = 30.0  # seconds: a child that lived this long resets the backoff
LATENCIES = 5_000  # recent frame-in to mix-out times kept for the benchmark and metrics


# ---- the parent ------------------------------------------------------------------------


@dataclass
class MixerStats:
    dropped: int = 0  # frames dropped because the child was behind (queue full)
    oversized: int = 0  # frames longer than MAX_OPUS: dropped
    strangers: int = 0  # frames of nobody who joined: dropped
    restarts: int = 0
    reports: int = 0  # Stats messages heard, from any child
    child: Stats = field(default_factory=Stats)  # the running child's last word


@dataclass
class _Conversation:
    talkers: set[str] = field(default_factory=set)
    listeners: dict[str, str | None] = field(default_factory=dict)


class ChildGone(Exception):
    """Why a child stopped serving (it exited, hung, or broke the protocol)."""


class Mixer:
    """The conversations of this process's rooms; callbacks run on the event loop."""

    def __init__(
        self,
        *,
        on_mix: Callable[[str, str, bytes, int], None],
        on_speaking: Callable[[str, str, bool], None],
        on_speech: Callable[[str, str, float, float], None],
        nice: int = 0,
    ) -> None:
        self._on_mix = on_mix
        self._on_speaking = on_speaking
        self._on_speech = on_speech
        self._nice = nice
        self._rooms: dict[str, _Conversation] = {}
        self._control: deque[bytes] = deque()
        self._frames: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(FromChild)
        self._speaking: set[tuple[str, str]] = set()
        self.stats = MixerStats()
        self.latencies: deque[float] = deque(maxlen=LATENCIES)
        self._process: asyncio.subprocess.Process | None = None
        self._why: str | None = None  # why this process ended the running child
        self._heard = 0.0  # when the child last said something (monotonic)

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        return self._process.pid if self._process is not None else None

    # -- the conversation (called on the event loop; never blocks) --

    def talker(self, room: str, talker: str) -> None:
        self._rooms.setdefault(room, _Conversation()).talkers.add(talker)
        self._send(Join(room, talker))

    def leave(self, room: str, talker: str) -> None:
        conversation = self._rooms.get(room)
        if conversation is None or talker not in conversation.talkers:
            return
        conversation.talkers.discard(talker)
        self._forget_if_empty(room)
        self._send(Leave(room, talker))

    def listener(self, room: str, listener: str, exclude: str | None) -> None:
        self._rooms.setdefault(room, _Conversation()).listeners[listener] = exclude
        self._send(Listen(room, listener, exclude))

    def drop_listener(self, room: str, listener: str) -> None:
        conversation = self._rooms.get(room)
        if conversation is None or conversation.listeners.pop(listener, False) is False:
            return
        self._forget_if_empty(room)
        self._send(Unlisten(room, listener))

    def audio(self, room: str, talker: str, opus: bytes, arrived: float) -> None:
        conversation = self._rooms.get(room)
        if conversation is None or talker not in conversation.talkers:
            self.stats.strangers += 1  # the lesson, or a talker who left: never mixed
        elif len(opus) > MAX_OPUS:
            self.stats.oversized += 1
        elif len(self._frames) >= FRAME_QUEUE:
            self.stats.dropped += 1  # the child is behind: old audio is worth nothing
        else:
            self._frames.append(frame(Frame(room, talker, opus, arrived), self._encoder))
            self._wake.set()

    def _send(self, message: ToChild) -> None:
        self._control.append(frame(message, self._encoder))
        self._wake.set()
        if len(self._control) > CONTROL_QUEUE:
            self._kill("it stopped reading")  # the next child gets the state, not this queue

    def _forget_if_empty(self, room: str) -> None:
        conversation = self._rooms[room]
        if not conversation.talkers and not conversation.listeners:
            del self._rooms[room]

    def _state(self) -> list[bytes]:
        """The whole conversation, for a new child."""
        messages: list[ToChild] = []
        for room, conversation in self._rooms.items():
            messages += [Join(room, talker) for talker in sorted(conversation.talkers)]
            messages += [Listen(room, lst, ex) for lst, ex in conversation.listeners.items()]
        return [frame(message, self._encoder) for message in messages]

    # -- the child --

    async def run(self) -> None:
        """Own the mixing child until cancelled, starting it again when it dies."""
        backoff = BACKOFF[0]
        while True:
            started = time.monotonic()
            try:
                reason = await self._serve_one()
            except OSError as exc:  # no process could be made (out of memory, of pids...)
                reason = f"it could not start: {exc}"
            self.stats.restarts += 1
            if time.monotonic() - started > STABLE:
                backoff = BACKOFF[0]
            log.warning(
                "the mixing child stopped (%s); starting another in %.1f s", reason, backoff
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF[1])

    async def _serve_one(self) -> str:
        """Run one child until it stops serving; why it stopped."""
        process = await self._start()
        assert process.stdin and process.stdout and process.stderr
        tail: deque[str] = deque(maxlen=5)
        self._process, self._why = process, None
        self.stats.child = Stats()
        self._control.clear()  # the state below says it all
        self._frames.clear()
        self._control.extend(self._state())
        self._wake.set()
        try:
            async with asyncio.TaskGroup() as group:
                helpers = [
                    group.create_task(self._write(process.stdin)),
                    group.create_task(self._stderr(process.stderr, tail)),
                    group.create_task(self._watch()),
                ]
                try:
                    await self._read(process.stdout)
                    reason = self._why or "its output ended"
                except ChildGone as gone:
                    reason = str(gone)
                for helper in helpers:
                    helper.cancel()
        finally:
            self._process = None
            if process.returncode is None:
                process.kill()
            await asyncio.shield(process.wait())
            self._stopped_speaking()
        code = process.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        last = f": {tail[-1]}" if tail else ""
        return f"{reason}, {how}{last}"

    def _kill(self, why: str) -> None:
        """End the running child (its reader then sees the output end)."""
        process = self._process
        if process is not None and process.returncode is None:
            self._why = self._why or why
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    async def _start(self) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p
        )
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.media.mixing",
            "--parent",
            str(os.getpid()),
            "--nice",
            str(self._nice),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )

    async def _write(self, stdin: asyncio.StreamWriter) -> None:
        """Control first (a frame must not overtake its talker's join), then frames."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._control or self._frames:
                    batch = [*self._control]
                    self._control.clear()
                    while self._frames and len(batch) < 256:
                        batch.append(self._frames.popleft())
                    stdin.write(b"".join(batch))
                    await stdin.drain()  # waits, never blocks the loop, while the pipe is full
        except (BrokenPipeError, ConnectionResetError):
            return  # the child is gone; the reader sees its output end

    async def _stderr(self, stderr: asyncio.StreamReader, tail: deque[str]) -> None:
        """Keep the last lines the child wrote (a traceback's last says why it died)."""
        while True:
            try:
                line = await stderr.readline()
            except ValueError:
                continue  # a line past the stream's limit: it was dropped, read on
            if not line:
                return
            tail.append(line.decode(errors="replace").strip()[:500])

    async def _watch(self) -> None:
        """The child says Stats every second: one silent for ANSWER_WITHIN seconds hangs."""
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self._heard > ANSWER_WITHIN:
                self._kill(f"it said nothing for {ANSWER_WITHIN:.0f} s")
                return

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        self._heard = time.monotonic()
        while True:
            try:
                body = await read_message(stdout)
            except TooLong as exc:
                raise ChildGone(f"it sent {exc}") from None
            if body is None:
                return
            try:
                message = self._decoder.decode(body)
            except msgspec.DecodeError as exc:
                raise ChildGone(f"it sent a bad message: {exc}") from None
            self._heard = time.monotonic()
            self._dispatch(message)

    def _dispatch(self, message: FromChild) -> None:
        match message:
            case Mixed(room, listeners, opus, timestamp, arrived):
                if arrived:
                    self.latencies.append(time.time() - arrived)
                for listener in listeners:
                    self._on_mix(room, listener, opus, timestamp)
            case Speaking(room, talker, on, _):
                (self._speaking.add if on else self._speaking.discard)((room, talker))
                self._on_speaking(room, talker, on)
            case Speech(room, talker, start, end):
                self._on_speech(room, talker, start, end)
            case Stats():
                self.stats.child = message
                self.stats.reports += 1

    def _stopped_speaking(self) -> None:
        """A child that died took its talkers' stretches under way with it: nobody shows as
        speaking, and those stretches are not recorded (they cannot be known to have ended)."""
        for room, talker in sorted(self._speaking):
            self._on_speaking(room, talker, False)
        self._speaking.clear()
