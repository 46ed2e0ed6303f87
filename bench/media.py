"""Lesson video over WebRTC (issue 4): viewers per worker, memory over joins and leaves, the
time to a first frame and to a seek's frame, and how far apart two viewers of a room are.

    .venv/bin/python -m bench.media                  # everything, about 3 minutes
    .venv/bin/python -m bench.media --viewers 1,8 --cycles 20 --joins 5 --seeks 5   # a quick look

The server is a real `cocoach serve` in embedded mode, a separate process (its CPU and RSS are
read from /proc), offering 127.0.0.1 as its only ICE candidate and accepting loopback only.
Its data directory is seeded before it starts, as ingest would leave it: a 60 s 640x360 30 fps
VP8/Opus WebM (server/library/clip.py, the frame number drawn into every picture) and its ready
record, and a room watching it. A coach drives playback over the room protocol (MessagePack
over WebSocket); the viewers are aiortc peer connections in this process (recvonly video and
audio, the offer POSTed to /rooms/{room}/whep).

aiortc decodes what a receiver gets in a thread per receiver. Forty-eight VP8 decoders would
take this machine's two cores from the server being measured, so the viewers of the CPU,
memory and join/leave runs do not decode: this process replaces aiortc's decoder loop
(`aiortc.rtcrtpreceiver.decoder_worker`) for their tracks with one that counts the encoded
frames the jitter buffer completes. That they count about 30 frames a second each is the check
that they are really watching. The latency and skew runs use real decoding viewers and read
the frame number from each decoded picture (`read_frame_number`).

Phases, in this order (each bounded in count and time; `--only` picks some):
- cycles: one viewer joins (POST), waits for 5 frames, leaves (DELETE on the Location), 100
  times, the room playing; RSS, open descriptors and threads after cycles 0, 25, 50, 75, 100.
  First, because later phases raise the heap's high-water mark, under which a slow leak
  would be reused memory and not show.
- viewers: for N in --viewers, a fresh server (so no step inherits another's heap); the room
  plays, and after 5 s with nobody watching N viewers join; 1.5 s later the server's CPU
  (utime + stime from /proc/PID/stat) is read over --window seconds, and its RSS every 0.5 s.
  Per viewer: CPU above the 5 s with nobody watching, and the median RSS above the RSS then,
  divided by N. Then 3 s of the /readyz probe below.
- join: the time from sending the POST to the first decoded frame, the room playing for over
  a second; the room paused, to the decoded frame it is paused on; and 0.3 s after a play.
- seek: a viewer connected, the room paused, the coach sends `seek` to frame k / 30; the time
  until the viewer decodes frame k. Then seeks while playing: the time to the first frame
  from k on.
- skew: two viewers, the room playing at 1x; every 100 ms, both viewers' last decoded frame
  numbers at the same instant; then a pause, and the frame each viewer settles on.

Meanwhile the server's /readyz is asked every 50 ms: the slowest answer is the longest its
event loop was held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import shutil
import statistics
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import websockets
from aiortc import rtcrtpreceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench import infra, profiling
from bench.kit import BenchError, cli
from bench.kit.cpu import Meter, quiet
from bench.kit.stats import percentile, summary
from bench.kit.whep import WAIT, WhepViewer, gather_limited, start_server
from server.library.clip import WEBM_VP8, ClipSpec, read_frame_number, write_clip
from server.media.ice import offer_host_addresses
from server.media.pacing import EPSILON
from server.sync.sqlite_store import SqliteStore
from server.sync.store import Rendition, RoomRecord, VideoRecord

FPS = 30
WIDTH, HEIGHT = 640, 360
SECONDS = 60
ROOM = "lesson"
VIDEO = "vbench"
HTTP_TIMEOUT = 15.0

# Every peer connection in this process offers loopback only (DESIGN §3).
offer_host_addresses(["127.0.0.1"])


# ---- counting instead of decoding ---------------------------------------------------------------

_ORIGINAL_DECODER_WORKER = rtcrtpreceiver.decoder_worker
# A track's frame queue -> what to call with each encoded frame instead of decoding it.
_SINKS: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()


def _decoder_worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
    """aiortc's per-receiver decoder thread, but for a registered track it only counts."""
    sink = _SINKS.get(output_q)
    if sink is None:
        _ORIGINAL_DECODER_WORKER(loop, input_q, output_q, decode_error)
        return
    while (task := input_q.get()) is not None:
        sink(task[1])
    with contextlib.suppress(RuntimeError):  # the loop may be closing
        asyncio.run_coroutine_threadsafe(output_q.put(None), loop)


rtcrtpreceiver.decoder_worker = _decoder_worker


# ---- viewers ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Viewer(WhepViewer):
    """A receive-only WHEP viewer. `decode=False`: counts encoded frames, decodes nothing."""

    room = ROOM

    decode: bool
    last: int | None = None  # the last frame number decoded (decoding viewers)
    _target: tuple[Callable[[int], bool], asyncio.Future[tuple[float, int]]] | None = None

    def _on_track(self, track: MediaStreamTrack) -> None:
        # The counting sinks run in aiortc's receiver threads; only they write the counters.
        queue = track._queue  # type: ignore[attr-defined]
        if track.kind == "audio":
            _SINKS[queue] = self._count_audio
        elif self.decode:
            self._tasks.append(asyncio.create_task(self._read_video(track)))
        else:
            _SINKS[queue] = self._count_video

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.perf_counter()
                if self.first_frame is None:
                    self.first_frame = now
                self.video_frames += 1
                number = read_frame_number(frame)  # type: ignore[arg-type]
                if number is None:
                    continue
                self.last = number
                target = self._target
                if target is not None and target[0](number) and not target[1].done():
                    target[1].set_result((now, number))

    def expect(self, check: Callable[[int], bool]) -> asyncio.Future[tuple[float, int]]:
        """A future resolved with the time and number of the next frame this viewer decodes
        whose number passes `check`."""
        future: asyncio.Future[tuple[float, int]] = asyncio.get_running_loop().create_future()
        self._target = (check, future)
        return future


async def join_viewers(
    http: httpx.AsyncClient, base: str, subs: list[str], decode: bool
) -> list[Viewer]:
    viewers = [Viewer(sub, decode) for sub in subs]
    try:
        await gather_limited([v.join(http, base) for v in viewers])
    except BaseException:
        with contextlib.suppress(Exception):
            await leave_all(http, base, viewers)
        raise
    return viewers


async def leave_all(http: httpx.AsyncClient, base: str, viewers: list[Viewer]) -> None:
    await gather_limited([v.leave(http, base) for v in viewers])


# ---- the coach ----------------------------------------------------------------------------------


class Coach:
    """A room-protocol member who drives playback and keeps the latest playback state."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.playback: dict[str, Any] = {}
        self.errors: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, base: str) -> Coach:
        token = infra.coach_token(ROOM, "bench:coach")
        url = f"{base.replace('http', 'ws', 1)}/rooms/{ROOM}/ws?token={token}"
        ws = await websockets.connect(url, max_size=None, open_timeout=WAIT)
        coach = cls(ws)
        await coach.until(lambda p: bool(p), "welcome")
        return coach

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in self.ws:
                message = msgspec.msgpack.decode(data)
                if "playback" in message:
                    self.playback = message["playback"]
                    self._changed.set()
                elif message.get("type") == "error":
                    self.errors.append(message)

    async def send(self, **message: Any) -> None:
        await self.ws.send(msgspec.msgpack.encode(message))

    async def until(
        self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not check(self.playback):
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no playback state for {what}: {self.playback} {self.errors}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.1)):
                    await self._changed.wait()
        return self.playback

    async def pause_at(self, position: float) -> dict[str, Any]:
        p = self.playback
        if p.get("status") == "paused" and abs(p["position"] - position) < 1e-6:
            return p
        seq = p.get("seq", -1)
        await self.send(type="pause")
        await self.send(type="seek", position=position)
        return await self.until(
            lambda p: (
                p["seq"] > seq and p["status"] == "paused" and abs(p["position"] - position) < 1e-6
            ),
            f"paused at {position}",
        )

    async def play(self) -> dict[str, Any]:
        seq = self.playback.get("seq", -1)
        await self.send(type="play")
        return await self.until(lambda p: p["seq"] > seq and p["status"] == "playing", "a play")

    async def pause_now(self) -> dict[str, Any]:
        seq = self.playback.get("seq", -1)
        await self.send(type="pause")
        return await self.until(lambda p: p["seq"] > seq and p["status"] == "paused", "a pause")

    async def restart(self, position: float) -> dict[str, Any]:
        """Play from `position`: pause, seek, play. Not a seek while playing: with viewers,
        that holds the server's loop until the next keyframe; this way only the audio tracks
        hold it, for the play's 0.2 s lead (see the seek phase)."""
        await self.pause_at(position)
        return await self.play()

    def display_position(self) -> float:
        p = self.playback
        if p.get("status") != "playing" or time.time() <= p["at"]:
            return float(p.get("position", 0.0))
        return float(p["position"] + (time.time() - p["at"]) * p["rate"])

    async def steady(self) -> None:
        """Wait until the room has played past the keyframe after its last play or seek:
        a track that starts before that falls into the seek loop described in the seek
        phase, and the steady-state figures are not about that."""
        deadline = time.monotonic() + 3.0
        while (
            self.playback.get("status") == "playing"
            and self.display_position() < self.playback["position"] + 1.1
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)

    async def keep_playing(self, limit: float = SECONDS - 8.0, start: float = 2.0) -> None:
        """Start again near the beginning if the room is not playing or is near the end."""
        if self.playback.get("status") != "playing" or self.display_position() > limit:
            await self.restart(start)
            await self.steady()

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


def frame_at(position: float) -> int:
    """The frame a paused room shows: the last whose (millisecond) timestamp is <= position."""
    k = int(position * FPS) + 1
    while k > 0 and round(k * 1000 / FPS) / 1000 > position + EPSILON:
        k -= 1
    return k


def is_frame(k: int) -> Callable[[int], bool]:
    return lambda n: n == k


# ---- the server ---------------------------------------------------------------------------------


def make_clip(path: Path) -> None:
    """The lesson file (writing it takes about 15 s; `--clip` keeps it for the next run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, ClipSpec(seconds=SECONDS, fps=FPS, width=WIDTH, height=HEIGHT), WEBM_VP8)


async def seed(data: Path, clip: Path) -> None:
    """A data directory as ingest leaves it: the rendition in the library, its ready record,
    and a room created with the video."""
    folder = data / "videos" / VIDEO
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "360p.webm"
    shutil.copyfile(clip, path)
    rendition = Rendition(
        name="360p",
        width=WIDTH,
        height=HEIGHT,
        file=f"{VIDEO}/360p.webm",
        bytes=path.stat().st_size,
        fps=FPS,
        duration=float(SECONDS),
    )
    record = VideoRecord(
        id=VIDEO,
        title="bench lesson",
        created=time.time(),
        owner="admin",
        status="ready",
        progress=1.0,
        duration=float(SECONDS),
        fps=FPS,
        width=WIDTH,
        height=HEIGHT,
        renditions=(rendition,),
        consent="not_needed",  # a generated test picture
    )
    store = SqliteStore(data / "cocoach.sqlite3")
    try:
        await store.put_video(record)
        await store.create_room(RoomRecord(id=ROOM, title="bench", created=0.0, video=VIDEO))
    finally:
        await store.close()


@dataclass
class Window:
    seconds: float
    server_cores: float
    bench_cores: float
    other_cores: float
    fps: list[float]
    audio_pps: list[float]
    rss_median: int
    rss_max: int


async def measure(proc: infra.Proc, seconds: float, viewers: list[Viewer]) -> Window:
    video0 = [v.video_frames for v in viewers]
    audio0 = [v.audio_frames for v in viewers]
    meter = Meter(proc)
    rss = []
    while (left := meter.t0 + seconds - time.perf_counter()) > 0:
        await asyncio.sleep(min(0.5, left))
        rss.append(proc.rss_bytes())
    cpu = meter.read()
    wall = cpu["seconds"]
    return Window(
        seconds=wall,
        server_cores=cpu["server_cores"],
        bench_cores=cpu["bench_cores"],
        other_cores=cpu["other_cores"],
        fps=[(v.video_frames - n) / wall for v, n in zip(viewers, video0, strict=True)],
        audio_pps=[(v.audio_frames - n) / wall for v, n in zip(viewers, audio0, strict=True)],
        rss_median=int(statistics.median(rss)),
        rss_max=max(rss),
    )


class LoopLag:
    """Asks the server's /readyz every 50 ms meanwhile: the slowest answer shows how long its
    event loop was held (every viewer, member and request of the worker waits that long).
    This process's own loop delays the answer too, so its lag is measured beside it (how
    late a 10 ms sleep wakes)."""

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http, self.base = http, base
        self.delays: list[float] = []
        self.own: list[float] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def _poll(self) -> None:
        while True:
            t0 = time.perf_counter()
            await self.http.get(f"{self.base}/readyz")
            self.delays.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)

    async def _own(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            self.own.append(time.perf_counter() - t0 - 0.01)

    async def __aenter__(self) -> LoopLag:
        self._tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._own())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def own_max_ms(self) -> float:
        return 1000 * max(self.own, default=math.nan)

    @property
    def max_ms(self) -> float:
        return 1000 * max(self.delays, default=math.nan)

    @property
    def p50_ms(self) -> float:
        return 1000 * percentile(sorted(self.delays), 0.5)


# ---- phases -------------------------------------------------------------------------------------


@dataclass
class Step:
    viewers: int
    idle_cores: float
    idle_rss_mib: float
    server_cores: float
    cores_per_viewer: float
    rss_mib: float
    mib_per_viewer: float
    fps_min: float
    fps_median: float
    fps_max: float
    audio_pps_median: float
    rss_max_mib: float
    loop_lag_p50_ms: float
    loop_lag_max_ms: float
    bench_loop_lag_max_ms: float
    bench_cores: float
    other_cores: float
    join_seconds: float


@dataclass
class Results:
    machine: str = ""
    code: str = ""
    steps: list[Step] = field(default_factory=list)
    cycles: list[dict[str, float]] = field(default_factory=list)
    join_playing: dict[str, float] = field(default_factory=dict)
    join_paused: dict[str, float] = field(default_factory=dict)
    join_after_play: dict[str, Any] = field(default_factory=dict)
    seek_paused: dict[str, float] = field(default_factory=dict)
    seek_playing: dict[str, Any] = field(default_factory=dict)
    skew: dict[str, Any] = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)
    server_log: list[str] = field(default_factory=list)
    coach_errors: list[Any] = field(default_factory=list)


class Bench:
    def __init__(
        self, args: argparse.Namespace, stack: infra.Stack, http: httpx.AsyncClient, clip: Path
    ) -> None:
        self.args = args
        self.stack = stack
        self.http = http
        self.clip = clip
        self.results = Results(machine=infra.machine(), code=infra.code_version())
        self.proc: infra.Proc | Any = None
        self.base = ""
        self.coach: Coach | Any = None
        self.serial = 0
        self.servers = 0

    async def start_server(self) -> None:
        """A fresh embedded server on a freshly seeded data directory, a coach in the room,
        and the warm-up viewer."""
        self.servers += 1
        name = f"media{self.servers}"
        await seed(self.stack.directory / f"data-{name}", self.clip)
        self.proc = await start_server(self.stack, name)
        self.base = self.proc.base
        self.coach = await Coach.connect(self.base)
        await self.warm_up()

    async def stop_server(self) -> None:
        if self.coach is not None:
            self.results.coach_errors += self.coach.errors
            await self.coach.close()
            self.coach = None
        if self.proc is not None and self.proc in self.stack.procs:
            lines = self.proc.log_lines("WARNING", "ERROR", "Traceback")
            self.results.server_log += [f"{self.proc.name}: {line}" for line in lines]
            self.proc.stop()
            self.stack.procs.remove(self.proc)

    def subs(self, n: int, kind: str) -> list[str]:
        self.serial += n
        return [f"bench:{kind}{self.serial - n + i}" for i in range(n)]

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    async def one(self, kind: str, decode: bool) -> Viewer:
        (viewer,) = await join_viewers(self.http, self.base, self.subs(1, kind), decode)
        return viewer

    async def warm_up(self) -> None:
        """The first viewer attaches the video (the room goes to paused at 0); first-use costs
        (imports, the hold frame's encoder) are paid before anything is measured."""
        viewer = await self.one("warm", decode=True)
        try:
            await self.coach.until(lambda p: p.get("video") == VIDEO, "the video attached")
            await viewer.wait_frames(1)
            await self.coach.restart(2.0)
            await viewer.wait_frames(20)
        finally:
            await viewer.leave(self.http, self.base)

    async def cycles(self) -> None:
        marks = {0, *(round(self.args.cycles * q / 4) for q in range(1, 5))}

        async def mark(cycle: int) -> None:
            rss = await infra.settled_rss(self.proc)
            row = {
                "cycle": cycle,
                "rss_mib": rss / 2**20,
                "fds": self.proc.fds(),
                "threads": self.proc.threads(),
            }
            self.results.cycles.append(row)
            self.log(f"cycles: {row}")

        await self.coach.keep_playing()
        await mark(0)
        for cycle in range(1, self.args.cycles + 1):
            await self.coach.keep_playing()
            viewer = await self.one("c", decode=False)
            try:
                await viewer.wait_frames(5)
            finally:
                await viewer.leave(self.http, self.base)
            if cycle in marks:
                await mark(cycle)

    async def viewers(self) -> None:
        """Each step on a fresh server, so no step inherits another's heap (or the seek loop's
        growth, see the seek phase); the viewers join a room playing for over a second."""
        for n in self.args.viewers:
            await self.start_server()
            try:
                await self.step(n)
            finally:
                await self.stop_server()

    async def step(self, n: int) -> None:
        await self.coach.restart(2.0)
        await self.coach.steady()
        await quiet([self.proc], 10.0)
        idle = await measure(self.proc, 5.0, [])
        idle_rss = await infra.settled_rss(self.proc)
        t0 = time.perf_counter()
        viewers = await join_viewers(self.http, self.base, self.subs(n, "v"), decode=False)
        try:
            await asyncio.gather(*(v.wait_frames(1) for v in viewers))
            joined = time.perf_counter() - t0
            await asyncio.sleep(1.5)  # past every viewer's first burst
            spy = None
            if self.args.profile and n == max(self.args.viewers):
                out = Path(self.args.profile) / f"server-{n}-viewers.txt"
                out.parent.mkdir(parents=True, exist_ok=True)
                spy = profiling.start(self.proc, self.args.window, out)
            window = await measure(self.proc, self.args.window, viewers)
            if spy is not None:
                await asyncio.to_thread(profiling.finish, spy)
                self.results.profile = profiling.summary(out, top=25)
            # After the CPU window: its requests cost the server CPU of their own.
            async with LoopLag(self.http, self.base) as lag:
                await asyncio.sleep(3.0)
        finally:
            await leave_all(self.http, self.base, viewers)
        step = Step(
            viewers=n,
            idle_cores=idle.server_cores,
            idle_rss_mib=idle_rss / 2**20,
            server_cores=window.server_cores,
            cores_per_viewer=(window.server_cores - idle.server_cores) / n,
            rss_mib=window.rss_median / 2**20,
            mib_per_viewer=(window.rss_median - idle_rss) / n / 2**20,
            fps_min=min(window.fps),
            fps_median=statistics.median(window.fps),
            fps_max=max(window.fps),
            audio_pps_median=statistics.median(window.audio_pps),
            rss_max_mib=window.rss_max / 2**20,
            loop_lag_p50_ms=lag.p50_ms,
            loop_lag_max_ms=lag.max_ms,
            bench_loop_lag_max_ms=lag.own_max_ms,
            bench_cores=window.bench_cores,
            other_cores=window.other_cores,
            join_seconds=joined,
        )
        self.results.steps.append(step)
        self.log(f"viewers: {asdict(step)}")

    async def joins(self) -> None:
        rng = random.Random(7)
        first: list[float] = []
        answered: list[float] = []
        connected: list[float] = []
        for _ in range(self.args.joins):
            await self.coach.keep_playing()
            await asyncio.sleep(rng.uniform(0.0, 0.1))  # at any phase of the frame clock
            viewer = await self.one("j", decode=True)
            try:
                await viewer.wait_frames(1)
                assert viewer.first_frame is not None and viewer.answered is not None
                first.append(viewer.first_frame - viewer.posted)
                answered.append(viewer.answered - viewer.posted)
                if viewer.connected is not None:
                    connected.append(viewer.connected - viewer.posted)
            finally:
                await viewer.leave(self.http, self.base)
        self.results.join_playing = {
            **summary(first),
            "answer_p50_ms": summary(answered)["p50_ms"],
            "connected_p50_ms": summary(connected)["p50_ms"],
        }
        self.log(f"join (playing): {self.results.join_playing}")

        # Paused: the time to the frame the room is paused on (after the burst from the
        # keyframe before it, and the hold frame that lets the receiver finish it).
        to_frame: list[float] = []
        first = []
        for _ in range(max(1, self.args.joins // 2)):
            position = rng.randrange(0, (SECONDS - 1) * FPS) / FPS
            await self.coach.pause_at(position)
            viewer = Viewer(self.subs(1, "p")[0], decode=True)
            shown = viewer.expect(is_frame(frame_at(position)))
            try:
                await viewer.join(self.http, self.base)
                at, _ = await asyncio.wait_for(shown, WAIT)
                assert viewer.first_frame is not None
                to_frame.append(at - viewer.posted)
                first.append(viewer.first_frame - viewer.posted)
            finally:
                await viewer.leave(self.http, self.base)
        self.results.join_paused = {
            **summary(to_frame),
            "first_frame_p50_ms": summary(first)["p50_ms"],
        }
        self.log(f"join (paused): {self.results.join_paused}")

        # A viewer who joins in the first second after a play (or a seek while playing).
        after: list[float] = []
        skipped: list[int] = []
        lag = LoopLag(self.http, self.base)
        for _ in range(self.args.joins_after_play):
            position = rng.randrange(3 * FPS, 40 * FPS) / FPS
            await self.coach.pause_at(position)
            await self.coach.play()
            await asyncio.sleep(0.3)
            viewer = Viewer(self.subs(1, "a")[0], decode=True)
            shown = viewer.expect(lambda n: True)
            try:
                async with lag:
                    await viewer.join(self.http, self.base)
                    at, number = await asyncio.wait_for(shown, WAIT)
                after.append(at - viewer.posted)
                # How far the first picture is from the frame the room showed at that moment.
                skipped.append(number - frame_at(self.coach.display_position()))
            finally:
                await viewer.leave(self.http, self.base)
        if after:
            self.results.join_after_play = {
                **summary(after),
                "first_frame_minus_room": skipped,
                "loop_lag_max_ms": lag.max_ms,
                "bench_loop_lag_max_ms": lag.own_max_ms,
            }
            self.log(f"join (0.3 s after a play): {self.results.join_after_play}")

    async def seeks(self) -> None:
        viewer = await self.one("s", decode=True)
        rng = random.Random(11)
        try:
            await self.coach.pause_at(10.0)
            await viewer.wait_frames(1)
            await asyncio.sleep(0.5)
            times: list[float] = []
            distances: list[int] = []
            async with LoopLag(self.http, self.base) as lag:
                for _ in range(self.args.seeks):
                    frame = rng.randrange(0, (SECONDS - 1) * FPS)
                    while frame == viewer.last:
                        frame = rng.randrange(0, (SECONDS - 1) * FPS)
                    distances.append(frame % FPS)  # frames sent at once after the keyframe
                    position = frame / FPS
                    shown = viewer.expect(is_frame(frame_at(position)))
                    sent = time.perf_counter()
                    await self.coach.send(type="seek", position=position)
                    at, _ = await asyncio.wait_for(shown, WAIT)
                    times.append(at - sent)
                    await asyncio.sleep(0.3)
            self.results.seek_paused = {
                **summary(times),
                "burst_frames_mean": statistics.mean(distances),
                "loop_lag_max_ms": lag.max_ms,
                "bench_loop_lag_max_ms": lag.own_max_ms,
            }
            self.log(f"seek (paused): {self.results.seek_paused}")

            # Seeking while playing: the time to the first picture at or after the target.
            await self.coach.restart(5.0)
            await self.coach.steady()
            times, skipped = [], []
            rss0 = self.proc.rss_bytes()
            async with LoopLag(self.http, self.base) as lag:
                for _ in range(self.args.seeks_playing):
                    now = self.coach.display_position()
                    frame = rng.randrange(3 * FPS, 40 * FPS)
                    while abs(frame / FPS - now) < 5:
                        frame = rng.randrange(3 * FPS, 40 * FPS)
                    shown = viewer.expect(lambda n, k=frame: k <= n <= k + 2 * FPS)
                    sent = time.perf_counter()
                    await self.coach.send(type="seek", position=frame / FPS)
                    at, number = await asyncio.wait_for(shown, WAIT)
                    times.append(at - sent)
                    skipped.append(number - frame)
                    await asyncio.sleep(1.5)
            self.results.seek_playing = {
                **summary(times),
                "first_frame_minus_target": skipped,
                "loop_lag_max_ms": lag.max_ms,
                "bench_loop_lag_max_ms": lag.own_max_ms,
                "rss_growth_mib_per_seek": (self.proc.rss_bytes() - rss0)
                / max(1, len(times))
                / 2**20,
            }
            self.log(f"seek (playing): {self.results.seek_playing}")
        finally:
            await viewer.leave(self.http, self.base)

    async def skew(self) -> None:
        a, b = await join_viewers(self.http, self.base, self.subs(2, "k"), decode=True)
        diffs: list[int] = []
        try:
            await asyncio.gather(a.wait_frames(1), b.wait_frames(1))
            await self.coach.restart(5.0)
            await asyncio.sleep(1.0)
            steps = round(self.args.skew_seconds / 0.1)
            start = time.perf_counter()
            seen = (a.video_frames, b.video_frames)
            for i in range(steps):
                if a.last is not None and b.last is not None:
                    diffs.append(a.last - b.last)
                await asyncio.sleep(max(0.0, start + (i + 1) * 0.1 - time.perf_counter()))
            wall = time.perf_counter() - start
            fps = ((a.video_frames - seen[0]) / wall, (b.video_frames - seen[1]) / wall)
            paused = await self.coach.pause_now()
            expected = frame_at(paused["position"])
            await asyncio.sleep(1.0)
            last_a, last_b = a.last, b.last
        finally:
            await leave_all(self.http, self.base, [a, b])
        spread = Counter(abs(d) for d in diffs)
        ordered = sorted(abs(d) for d in diffs)
        self.results.skew = {
            "samples": len(diffs),
            "abs_diff_counts": dict(sorted(spread.items())),
            "within_1_frame": sum(n for d, n in spread.items() if d <= 1) / max(1, len(diffs)),
            "p50_frames": percentile(ordered, 0.5),
            "p95_frames": percentile(ordered, 0.95),
            "max_frames": max(ordered, default=math.inf),
            "mean_a_minus_b": statistics.mean(diffs) if diffs else math.nan,
            "fps": fps,
            "paused_expected": expected,
            "paused_a": last_a,
            "paused_b": last_b,
        }
        self.log(f"skew: {self.results.skew}")


# ---- report and main ----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def latency_row(name: str, figures: dict[str, Any], goal: float) -> str:
    f = figures
    return (
        f"| {name} | {f['n']} | {f['p50_ms']:.0f} | {f['p95_ms']:.0f} | {f['max_ms']:.0f} "
        f"| {goal:.0f} | {verdict(f['p95_ms'] <= goal)} |"
    )


def report(r: Results) -> str:
    lines = [f"machine: {r.machine}; cocoach at {r.code}", ""]
    if r.cycles:
        lines += ["| join/leave cycles | server RSS MiB | fds | threads |", "|---|---|---|---|"]
        lines += [
            f"| {c['cycle']} | {c['rss_mib']:.1f} | {c['fds']} | {c['threads']} |" for c in r.cycles
        ]
        lines.append("")
    if r.steps:
        lines += [
            "| viewers | server cores (none watching) | cores per viewer "
            "| server RSS MiB (none watching) | MiB per viewer "
            "| video frames/s per viewer (min / median / max) "
            "| audio packets/s | /readyz p50 / max ms (bench loop lag max) | all joined s "
            "| bench cores | other cores |",
            "|" + "---|" * 11,
        ]
        lines += [
            f"| {s.viewers} | {s.server_cores:.3f} ({s.idle_cores:.3f}) "
            f"| {s.cores_per_viewer:.4f} | {s.rss_mib:.1f} ({s.idle_rss_mib:.1f}) "
            f"| {s.mib_per_viewer:.2f} "
            f"| {s.fps_min:.1f} / {s.fps_median:.1f} / {s.fps_max:.1f} "
            f"| {s.audio_pps_median:.1f} | {s.loop_lag_p50_ms:.1f} / {s.loop_lag_max_ms:.1f} "
            f"({s.bench_loop_lag_max_ms:.0f}) | {s.join_seconds:.2f} | {s.bench_cores:.2f} "
            f"| {s.other_cores:.2f} |"
            for s in r.steps
        ]
        top = max(r.steps, key=lambda s: s.viewers)
        lines.append(
            f"goal {top.viewers} viewers in <= 0.6 core: {verdict(top.server_cores <= 0.6)} "
            f"({top.server_cores:.2f}); <= 1 MB per viewer: "
            f"{verdict(top.mib_per_viewer * 2**20 <= 1e6)} ({top.mib_per_viewer:.2f} MiB)"
        )
    rows = []
    if r.join_playing:
        rows.append(latency_row("join to first decoded frame, playing", r.join_playing, 300))
    if r.join_paused:
        rows.append(latency_row("join to the paused frame", r.join_paused, 300))
    if r.join_after_play:
        rows.append(latency_row("join 0.3 s after a play", r.join_after_play, 300))
    if r.seek_paused:
        rows.append(latency_row("seek to the target frame, paused", r.seek_paused, 150))
    if r.seek_playing:
        rows.append(latency_row("seek while playing, to a frame >= target", r.seek_playing, 150))
    if rows:
        lines += ["", "| latency | n | p50 ms | p95 ms | max ms | goal ms | |", "|" + "---|" * 7]
        lines += rows
    if r.join_playing:
        lines.append(
            f"join, playing (p50): answer {r.join_playing['answer_p50_ms']:.0f} ms, connected "
            f"{r.join_playing['connected_p50_ms']:.0f} ms after the POST"
        )
    if r.join_after_play:
        lines.append(
            "join 0.3 s after a play: first frame minus the room's frame "
            f"{r.join_after_play['first_frame_minus_room']}; /readyz max "
            f"{r.join_after_play['loop_lag_max_ms']:.0f} ms (bench loop lag max "
            f"{r.join_after_play['bench_loop_lag_max_ms']:.0f} ms)"
        )
    if r.seek_paused:
        lines.append(
            f"seek, paused: {r.seek_paused['burst_frames_mean']:.1f} frames after the keyframe "
            f"on average; /readyz max {r.seek_paused['loop_lag_max_ms']:.0f} ms (bench loop "
            f"lag max {r.seek_paused['bench_loop_lag_max_ms']:.0f} ms)"
        )
    if r.seek_playing:
        s = r.seek_playing
        lines.append(
            f"seek, playing: first frame minus target {s['first_frame_minus_target']}; /readyz "
            f"max {s['loop_lag_max_ms']:.0f} ms (bench loop lag max "
            f"{s['bench_loop_lag_max_ms']:.0f} ms); RSS +{s['rss_growth_mib_per_seek']:.1f} MiB "
            "per seek"
        )
    if r.skew:
        k = r.skew
        lines += [
            "",
            f"skew, 2 viewers at 1x ({k['fps'][0]:.1f} and {k['fps'][1]:.1f} frames/s decoded), "
            f"{k['samples']} samples every 100 ms: |a - b| in frames {k['abs_diff_counts']}; "
            f"within 1 frame {100 * k['within_1_frame']:.0f} %, p95 {k['p95_frames']}, max "
            f"{k['max_frames']}: goal <= 1 frame {verdict(k['p95_frames'] <= 1)}",
            f"after a pause: the room's frame {k['paused_expected']}, viewer a "
            f"{k['paused_a']}, viewer b {k['paused_b']}: "
            + verdict(k["paused_a"] == k["paused_b"] == k["paused_expected"]),
        ]
    if r.profile:
        lines += ["", "py-spy profile of the server, largest viewers step:", *r.profile]
    if r.server_log:
        lines += ["", "server log (warnings and errors):", *r.server_log[:20]]
    if r.coach_errors:
        lines += ["", f"errors sent to the coach: {r.coach_errors[:5]}"]
    return "\n".join(lines)


PHASES = ("cycles", "viewers", "join", "seek", "skew")


async def main_async(args: argparse.Namespace) -> Results:
    with cli.stack(args.keep_logs) as stack:
        clip = Path(args.clip) if args.clip else stack.directory / "lesson.webm"
        if not clip.is_file():
            started = time.perf_counter()
            await asyncio.to_thread(make_clip, clip)
            print(f"lesson written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            bench = Bench(args, stack, http, clip)
            try:
                # One server for these, join/leave cycles first: later phases raise the
                # heap's high-water mark, under which a slow leak would not show.
                shared = [p for p in PHASES if p in args.only and p != "viewers"]
                if shared:
                    await bench.start_server()
                    for phase in shared:
                        await getattr(bench, {"join": "joins", "seek": "seeks"}.get(phase, phase))()
                    await bench.stop_server()
                if "viewers" in args.only:
                    await bench.viewers()
            finally:
                await bench.stop_server()
        return bench.results


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("python -m bench.media", __doc__)
    parser.add_argument(
        "--viewers",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 8, 24, 48],
        help="viewer counts, comma-separated",
    )
    parser.add_argument("--window", type=float, default=10.0, help="seconds of CPU measured")
    parser.add_argument("--cycles", type=int, default=100, help="join/leave cycles")
    parser.add_argument("--joins", type=int, default=20, help="joins timed while playing")
    parser.add_argument("--joins-after-play", type=int, default=10)
    parser.add_argument("--seeks", type=int, default=20, help="seeks timed while paused")
    parser.add_argument("--seeks-playing", type=int, default=5)
    parser.add_argument("--skew-seconds", type=float, default=10.0)
    parser.add_argument(
        "--only", type=lambda s: s.split(","), default=list(PHASES), help=",".join(PHASES)
    )
    parser.add_argument("--clip", help="cache the generated lesson in this file and reuse it")
    parser.add_argument(
        "--profile", help="py-spy the server during the largest viewers step, into this directory"
    )
    cli.output_options(parser, max_seconds=480.0)
    args = parser.parse_args(argv)
    if unknown := set(args.only) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}")
    results = cli.run(main_async, args)
    print(report(results))
    cli.write_json(args.json, asdict(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
