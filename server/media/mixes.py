"""This process's side of the conversations of the rooms it is home of: one mixing child for
all of them (server/media/mixer.py), started when the first room needs it, and each room's
conversation told what concerns it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from server.media.mixer import Mixer

log = logging.getLogger(__name__)

Start = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class MixSink(Protocol):
    """A room's conversation, as the mixing child's reports reach it."""

    def mixed(self, listener: str, opus: bytes, timestamp: int) -> None: ...

    def speaking(self, talker: str, on: bool) -> None: ...

    def speech(self, talker: str, start: float, end: float) -> None: ...


class Mixes:
    def __init__(self, start: Start, *, nice: int = 0) -> None:
        """`start` runs the mixer's supervision as a task of the process's own."""
        self._start = start
        self.mixer = Mixer(
            on_mix=self._mixed, on_speaking=self._speaking, on_speech=self._speech, nice=nice
        )
        self._rooms: dict[str, MixSink] = {}
        self._task: asyncio.Task[None] | None = None

    def open(self, room: str, sink: MixSink) -> Mixer:
        """`room`'s conversation starts here; the mixer to tell of its talkers and listeners."""
        self._rooms[room] = sink
        if self._task is None:
            self._task = self._start(self.mixer.run(), "mixer")
        return self.mixer

    def stop(self) -> None:
        """The process stops: so does its mixing child."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def close(self, room: str, sink: MixSink) -> None:
        if self._rooms.get(room) is sink:
            del self._rooms[room]

    def _mixed(self, room: str, listener: str, opus: bytes, timestamp: int) -> None:
        sink = self._rooms.get(room)
        if sink is not None:
            sink.mixed(listener, opus, timestamp)

    def _speaking(self, room: str, talker: str, on: bool) -> None:
        sink = self._rooms.get(room)
        if sink is not None:
            sink.speaking(talker, on)

    def _speech(self, room: str, talker: str, start: float, end: float) -> None:
        sink = self._rooms.get(room)
        if sink is not None:
            sink.speech(talker, start, end)
