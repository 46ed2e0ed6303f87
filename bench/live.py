"""The live lesson (issue 5): the latency the server adds between the classroom and a viewer,
the server's CPU per live viewer, and how soon a mid-lesson joiner sees the lesson.

    .venv/bin/python -m bench.live                        # everything, about 2.5 minutes
    .venv/bin/python -m bench.live --viewers 1,10 --seconds 5 --joins 5   # a quick look

The server is a real `cocoach serve` in embedded mode, a separate process (its CPU is read from
/proc/PID/stat), offering 127.0.0.1 as its only ICE candidate and accepting loopback only. The
publisher and the viewers are aiortc peer connections in this process, on loopback only. A
coach's page stays in the room throughout (a room-protocol member): it sees the lesson go live,
and it keeps the room at its home while no viewer is connected (see `Member`).

The publisher is the classroom: a picture with its frame number drawn in (server/library/clip.py
`draw`, --size, 30 fps) and Opus audio (silence), encoded by aiortc (VP8 at aiortc's 0.25-1.5
Mbit/s, as the receiver's REMB steers it). It stamps when it made each numbered frame; a
decoding viewer reads the number back from each decoded picture (`read_frame_number`), and
`seen - made` is that frame's latency: encoding, packetizing, the network, reassembly and
decoding, all in this process. Viewers complete a video frame on its last packet (RTP marker
bit, `server/media/frames.MarkerJitterBuffer`) as browsers do; aiortc's own reassembly would add
a frame interval (33 ms) to every figure.

Phases, in this order, each bounded in count and time:
- latency: the same publisher -> viewer pipeline twice at the same time, (a) direct, peer to
  peer, and (b) WHIP to the server, WHEP (`?source=live`) from it. After a 3 s warm-up,
  --seconds of frames; (b) - (a) per percentile is what the server adds. Running both at once
  puts the same outside load on both.
- join: the lesson live for a while and one viewer watching, --joins viewers join one at a time
  (POST `/whep?source=live`), each timed from the POST to its first decoded frame, then leave
  (DELETE); 0.5 s between joins, more than the server's 0.3 s between key frame requests, so
  every joiner asks the publisher for its own key frame.
- cpu: 0 viewers (the publisher and the recording only), then each of --viewers. One viewer
  decodes (and gives the latency at that load); the others do not decode: they count the
  encoded frames the marker jitter buffer completes (`server/media/frames.tap_receiver`), so
  30 VP8 decoders do not take the two cores from the server being measured. Each step waits
  up to 5 s for the machine to be quiet, then reads the server's utime + stime over --window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import msgspec
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from bench import infra
from bench.kit import BenchError, cli, stats
from bench.kit.cpu import Meter, quiet
from bench.kit.video import NumberedVideo
from bench.kit.whep import WAIT, WhepViewer, gather_limited, new_pc, start_server
from server.library.clip import ClipSpec, read_frame_number
from server.media.frames import VIDEO_CAPACITY, EncodedFrame, MarkerJitterBuffer, tap_receiver
from server.media.ice import offer_host_addresses
from server.rooms.roles import Role
from server.tokens import mint

ROOM = "live"
HTTP_TIMEOUT = 15.0
WARM_UP = 3.0
JOIN_GAP = 0.5

# Every peer connection in this process offers loopback only (DESIGN §3).
offer_host_addresses(["127.0.0.1"])


# ---- the classroom --------------------------------------------------------------------------


@dataclass(eq=False)
class Classroom:
    spec: ClipSpec
    pc: RTCPeerConnection = field(default_factory=new_pc)
    video: NumberedVideo | None = None
    location: str = ""

    def __post_init__(self) -> None:
        self.video = NumberedVideo(self.spec)
        self.pc.addTransceiver(self.video, direction="sendonly")
        self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")

    @property
    def made_at(self) -> dict[int, float]:
        assert self.video is not None
        return self.video.made_at

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def close(self) -> None:
        await self.pc.close()


# ---- viewers --------------------------------------------------------------------------------


@dataclass(eq=False)
class Watcher(WhepViewer):
    """A receive-only peer. `made_at` given: decodes video, reads each frame's number and its
    latency (its `first_frame` is the first decoded frame whose number reads); else counts the
    encoded frames and bytes it receives, decoding nothing."""

    room = ROOM
    source = "live"

    made_at: dict[int, float] | None
    video_bytes: int = 0
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (seen, seconds)
    unread: int = 0  # decoded frames whose number did not read clean
    first_age: float | None = None  # how old the first frame was (seen - made)

    @property
    def decodes(self) -> bool:
        return self.made_at is not None

    def prepare(self) -> None:
        """Before the connection comes up (the receivers start then): the marker jitter buffer
        for decoding video receivers, the counting tap for the others."""
        for transceiver in self.pc.getTransceivers():
            receiver = transceiver.receiver
            if transceiver.kind == "video" and self.decodes:
                receiver._RTCRtpReceiver__jitter_buffer = MarkerJitterBuffer(
                    capacity=VIDEO_CAPACITY, is_video=True
                )
            elif transceiver.kind == "video":
                tap_receiver(receiver, "video", self._count_video)
            else:
                tap_receiver(receiver, "audio", self._count_audio)

    def _on_track(self, track: Any) -> None:
        if track.kind == "video" and self.decodes:
            self._tasks.append(asyncio.create_task(self._read_video(track)))

    def _count_video(self, frame: EncodedFrame) -> None:
        super()._count_video(frame)
        self.video_bytes += len(frame.data)

    async def _read_video(self, track: Any) -> None:
        assert self.made_at is not None
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                seen = time.perf_counter()
                self.video_frames += 1
                number = read_frame_number(frame)
                made = self.made_at.get(number) if number is not None else None
                if made is None:
                    self.unread += 1
                    continue
                if self.first_frame is None:
                    self.first_frame, self.first_age = seen, seen - made
                self.latencies.append((seen, seen - made))

    def latencies_since(self, t0: float) -> list[float]:
        return sorted(latency for seen, latency in self.latencies if seen >= t0)

    def has_frames(self, count: int) -> bool:
        # A decoding viewer has read the number of one frame at least.
        return super().has_frames(count) and (not self.decodes or bool(self.latencies))

    # ---- direct, peer to peer (no server) ---------------------------------------------------

    async def answer_directly(self, classroom: Classroom) -> None:
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=await classroom.offer(), type="offer")
        )
        self.prepare()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await classroom.pc.setRemoteDescription(self.pc.localDescription)


class Member:
    """A coach's page: a room-protocol member (MessagePack over WebSocket) keeping the last
    `live` state. Without a member the room's home gives the room up once it has had no
    members for 30 s and no WHEP viewers (`HOME_IDLE_SECONDS`), and takes the live publisher
    down with it; a lesson is watched by someone whose page is open."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.live: dict[str, Any] | None = None
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, base: str) -> Member:
        url = f"{base.replace('http', 'ws', 1)}/rooms/{ROOM}/ws?token={token('bench:coach')}"
        return cls(await websockets.connect(url, max_size=None, open_timeout=WAIT))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in self.ws:
                message = msgspec.msgpack.decode(data)
                if "live" in message:
                    self.live = message["live"]

    async def until_live(self) -> None:
        deadline = time.monotonic() + WAIT
        while (self.live or {}).get("status") != "live":
            if time.monotonic() > deadline:
                raise BenchError(f"the room never showed the lesson live: {self.live}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._task.cancel()
        await self.ws.close()


def token(sub: str, role: Role = Role.COACH) -> str:
    return mint(infra.SECRET, room=ROOM, role=role, name=sub, sub=sub, ttl=3600)


async def publish(http: httpx.AsyncClient, base: str, classroom: Classroom) -> None:
    response = await http.post(
        f"{base}/rooms/{ROOM}/whip",
        content=await classroom.offer(),
        headers={
            "authorization": f"Bearer {token('bench:classroom', Role.CAMERA)}",
            "content-type": "application/sdp",
        },
    )
    if response.status_code != 201:
        raise BenchError(f"WHIP POST: HTTP {response.status_code} {response.text[:300]}")
    classroom.location = response.headers["location"]
    await classroom.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))


def paired_difference(a: Watcher, b: Watcher, t0: float) -> float:
    """The median over 1 s buckets of p50(b) - p50(a): what the server adds, robust to outside
    load that comes and goes during the window (both pipelines see the same bucket)."""
    buckets: dict[int, tuple[list[float], list[float]]] = {}
    for index, watcher in enumerate((a, b)):
        for seen, latency in watcher.latencies:
            if seen >= t0:
                buckets.setdefault(int(seen - t0), ([], []))[index].append(latency)
    differences = [
        statistics.median(lb) - statistics.median(la)
        for la, lb in buckets.values()
        if len(la) >= 10 and len(lb) >= 10
    ]
    return 1000 * statistics.median(differences) if differences else math.nan


# ---- figures --------------------------------------------------------------------------------


def summary(values_s: list[float]) -> dict[str, float]:
    return stats.summary(values_s, (0.5, 0.95, 0.99))


@dataclass
class Step:
    viewers: int
    server_cores: float
    bench_cores: float
    other_cores: float
    outside_before: float
    fps_min: float
    fps_median: float
    kbit_s_median: float
    video_fps_total: float  # video frames/s all viewers received together
    audio_pps_total: float
    latency: dict[str, float]


@dataclass
class Results:
    machine: str = ""
    code: str = ""
    size: str = ""
    direct: dict[str, float] = field(default_factory=dict)
    server: dict[str, float] = field(default_factory=dict)
    latency_window: dict[str, float] = field(default_factory=dict)
    joins: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    server_log: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace, stack: infra.Stack, http: httpx.AsyncClient):
        self.args = args
        self.stack = stack
        self.http = http
        width, height = (int(v) for v in args.size.split("x"))
        self.spec = ClipSpec(width=width, height=height, fps=30)
        self.results = Results(machine=infra.machine(), code=infra.code_version(), size=args.size)
        self.proc: infra.Proc | Any = None
        self.base = ""
        self.classroom: Classroom | Any = None
        self.member: Member | Any = None
        self.watcher: Watcher | Any = None  # the decoding viewer through the server
        self.serial = 0

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def sub(self, kind: str) -> str:
        self.serial += 1
        return f"bench:{kind}{self.serial}"

    async def start(self) -> None:
        self.proc = await start_server(self.stack, "live")
        self.base = self.proc.base
        await asyncio.to_thread(infra.create_room, self.base, ROOM)
        self.member = await Member.connect(self.base)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.member is not None:
                await self.member.close()
        with contextlib.suppress(Exception):
            if self.watcher is not None:
                await self.watcher.leave()
        with contextlib.suppress(Exception):
            if self.classroom is not None:
                await self.classroom.close()
        if self.proc is not None:
            lines = self.proc.log_lines("WARNING", "ERROR", "Traceback")
            self.results.server_log += lines[:20]

    def check_live(self) -> None:
        if (self.member.live or {}).get("status") != "live":
            raise BenchError(f"the lesson is no longer live: {self.member.live}")

    # ---- latency --------------------------------------------------------------------------

    async def latency(self) -> None:
        direct_room = Classroom(self.spec)
        direct = Watcher("direct", direct_room.made_at)
        self.classroom = Classroom(self.spec)
        try:
            await direct.answer_directly(direct_room)
            await publish(self.http, self.base, self.classroom)
            await self.member.until_live()
            self.watcher = Watcher(self.sub("watch"), self.classroom.made_at)
            await self.watcher.join(self.http, self.base)
            await direct.wait_frames(10)
            await self.watcher.wait_frames(10)
            await asyncio.sleep(WARM_UP)
            outside = await quiet([self.proc], 20.0)
            self.log(f"latency: measuring {self.args.seconds:.0f} s, direct and through the server")
            t0 = time.perf_counter()
            meter = Meter(self.proc)
            await asyncio.sleep(self.args.seconds)
            window = meter.read()
            self.check_live()
            self.results.direct = summary(direct.latencies_since(t0))
            self.results.server = summary(self.watcher.latencies_since(t0))
            for figures, watcher in (
                (self.results.direct, direct),
                (self.results.server, self.watcher),
            ):
                figures["fps"] = figures["n"] / window["seconds"]
                figures["unread"] = watcher.unread
            self.results.latency_window = {
                **window,
                "outside_before": outside,
                "paired_p50_difference_ms": paired_difference(direct, self.watcher, t0),
            }
        finally:
            await direct.leave()
            await direct_room.close()

    # ---- mid-lesson joiners ---------------------------------------------------------------

    async def joins(self) -> None:
        await asyncio.sleep(1.0)  # the lesson live for a while, past its first key frame
        outside = await quiet([self.proc], 10.0)
        meter = Meter(self.proc)
        totals, answers, connects, firsts, ages = [], [], [], [], []
        for i in range(self.args.joins):
            joiner = Watcher(self.sub("join"), self.classroom.made_at)
            try:
                await joiner.join(self.http, self.base)
                await joiner.wait_frames(1)
                assert joiner.first_frame is not None and joiner.answered is not None
                totals.append(joiner.first_frame - joiner.posted)
                answers.append(joiner.answered - joiner.posted)
                if joiner.connected is not None:
                    connects.append(joiner.connected - joiner.posted)
                    firsts.append(joiner.first_frame - joiner.connected)
                ages.append(joiner.first_age or 0.0)
            finally:
                await joiner.leave(self.http, self.base)
            self.log(f"join {i + 1}: first frame {1000 * totals[-1]:.0f} ms after the POST")
            await asyncio.sleep(JOIN_GAP)
        self.results.joins = {
            "post_to_first_frame": summary(totals),
            "post_to_answer": summary(answers),
            "post_to_connected": summary(connects),
            "connected_to_first_frame": summary(firsts),
            "first_frame_age": summary(ages),
            "within_1s": sum(t < 1.0 for t in totals),
            "window": {**meter.read(), "outside_before": outside},
        }

    # ---- CPU per viewer -------------------------------------------------------------------

    async def cpu(self) -> None:
        counted: list[Watcher] = []
        steps = sorted({0, *self.args.viewers})
        try:
            await self.watcher.leave(self.http, self.base)
            self.watcher = None
            for n in steps:
                if n > 0 and self.watcher is None:
                    self.watcher = Watcher(self.sub("watch"), self.classroom.made_at)
                    await self.watcher.join(self.http, self.base)
                    await self.watcher.wait_frames(5)
                more = [Watcher(self.sub("count"), None) for _ in range(n - 1 - len(counted))]
                if more:
                    await gather_limited([v.join(self.http, self.base) for v in more])
                    await gather_limited([v.wait_frames(5) for v in more])
                    counted += more
                await asyncio.sleep(2.0)  # past the joins' key frames and bursts
                self.results.steps.append(await self.measure(n, counted))
                self.log(
                    f"cpu: {n} viewers, server {self.results.steps[-1].server_cores:.3f} cores"
                )
        finally:
            await gather_limited([v.leave(self.http, self.base) for v in counted])

    async def measure(self, n: int, counted: list[Watcher]) -> Step:
        viewers = [self.watcher, *counted] if n > 0 else []
        outside = await quiet([self.proc], 5.0)
        frames0 = [v.video_frames for v in viewers]
        bytes0 = [v.video_bytes for v in counted]
        audio0 = sum(v.audio_frames for v in viewers)
        t0 = time.perf_counter()
        meter = Meter(self.proc)
        await asyncio.sleep(self.args.window)
        window = meter.read()
        self.check_live()
        wall = window["seconds"]
        fps = [(v.video_frames - f) / wall for v, f in zip(viewers, frames0, strict=True)]
        kbit = [8 * (v.video_bytes - b) / wall / 1000 for v, b in zip(counted, bytes0, strict=True)]
        return Step(
            viewers=n,
            server_cores=window["server_cores"],
            bench_cores=window["bench_cores"],
            other_cores=window["other_cores"],
            outside_before=outside,
            fps_min=min(fps, default=math.nan),
            fps_median=statistics.median(fps) if fps else math.nan,
            kbit_s_median=statistics.median(kbit) if kbit else math.nan,
            video_fps_total=sum(fps),
            audio_pps_total=(sum(v.audio_frames for v in viewers) - audio0) / wall,
            latency=summary(self.watcher.latencies_since(t0)) if n > 0 else {},
        )


# ---- the report -----------------------------------------------------------------------------


def report(r: Results) -> str:
    lines = [f"machine: {r.machine}", f"code: {r.code}", f"picture: {r.size} at 30 fps, VP8 + Opus"]
    if r.direct:
        w = r.latency_window
        lines += [
            "",
            f"latency, made -> decoded, {w['seconds']:.0f} s, both pipelines at once "
            f"(server {w['server_cores']:.2f} cores, bench {w['bench_cores']:.2f}, "
            f"other {w['other_cores']:.2f}; other before {w['outside_before']:.2f}):",
            "| pipeline | frames (fps) | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in (("(a) direct, peer to peer", r.direct), ("(b) through cocoach", r.server)):
            lines.append(
                f"| {name} | {s['n']} ({s['fps']:.1f}) | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | "
                f"{s['p99_ms']:.1f} | {s['max_ms']:.1f} |"
            )
        added = {q: r.server[f"{q}_ms"] - r.direct[f"{q}_ms"] for q in ("p50", "p95", "p99")}
        lines.append(
            f"| **added by the server (b - a)** | | **{added['p50']:.1f}** | "
            f"**{added['p95']:.1f}** | {added['p99']:.1f} | |"
        )
        lines.append(
            f"median over 1 s buckets of p50(b) - p50(a): {w['paired_p50_difference_ms']:.1f} ms"
        )
    if r.joins:
        j = r.joins
        lines += ["", f"mid-lesson joins ({j['post_to_first_frame']['n']}), from the WHEP POST:"]
        lines += ["| to | p50 ms | p95 ms | max ms |", "|---|---|---|---|"]
        for key, name in (
            ("post_to_answer", "the answer (201)"),
            ("post_to_connected", "connected (ICE + DTLS)"),
            ("post_to_first_frame", "**the first decoded frame**"),
            ("first_frame_age", "(age of that frame: made -> decoded)"),
        ):
            s = j[key]
            lines.append(f"| {name} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | {s['max_ms']:.0f} |")
        jw = j["window"]
        lines.append(
            f"within a second: {j['within_1s']} of {j['post_to_first_frame']['n']} "
            f"(server {jw['server_cores']:.2f} cores, bench {jw['bench_cores']:.2f}, "
            f"other {jw['other_cores']:.2f}; other before {jw['outside_before']:.2f})"
        )
    if r.steps:
        base = r.steps[0].server_cores if r.steps[0].viewers == 0 else math.nan
        lines += [
            "",
            "server CPU per live viewer (1 decoding viewer, the rest count encoded frames):",
            "| viewers | server cores | above 0 viewers, per viewer | fps min/median | "
            "video kbit/s | latency p50/p95 ms | bench cores | other cores (before) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in r.steps:
            per = (s.server_cores - base) / s.viewers if s.viewers else math.nan
            lat = f"{s.latency['p50_ms']:.0f} / {s.latency['p95_ms']:.0f}" if s.latency else "-"
            lines.append(
                f"| {s.viewers} | {s.server_cores:.3f} | {per:.4f} | "
                f"{s.fps_min:.1f} / {s.fps_median:.1f} | {s.kbit_s_median:.0f} | {lat} | "
                f"{s.bench_cores:.2f} | {s.other_cores:.2f} ({s.outside_before:.2f}) |"
            )
        lines += [
            "",
            "normalised by what was delivered (the publisher's frame rate falls when this process "
            "waits for a CPU):",
            "| viewers | video frames/s + audio packets/s delivered | server us each, above "
            "0 viewers | cores per viewer at 30 fps + 50 packets/s |",
            "|---|---|---|---|",
        ]
        for s in r.steps:
            delivered = s.video_fps_total + s.audio_pps_total
            if s.viewers and delivered > 0:
                each = (s.server_cores - base) / delivered
                lines.append(
                    f"| {s.viewers} | {s.video_fps_total:.0f} + {s.audio_pps_total:.0f} | "
                    f"{1e6 * each:.0f} | {each * 80:.4f} |"
                )
        with_viewers = [s for s in r.steps if s.viewers > 0]
        if len(with_viewers) >= 2:
            first, last = with_viewers[0], with_viewers[-1]
            slope = (last.server_cores - first.server_cores) / (last.viewers - first.viewers)
            lines.append(
                f"cores per extra viewer ({first.viewers} -> {last.viewers}): {slope:.4f}"
                f" (about {1 / slope:.0f} viewers per core)"
                if slope > 0
                else f"cores per extra viewer: {slope:.4f}"
            )
    if r.server_log:
        lines += ["", "server log warnings:", *r.server_log]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> Results:
    with cli.stack(args.keep_logs) as stack:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            bench = Bench(args, stack, http)
            try:
                await bench.start()
                await bench.latency()
                await bench.joins()
                await bench.cpu()
            finally:
                await bench.stop()
        return bench.results


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("python -m bench.live", __doc__)
    parser.add_argument(
        "--viewers",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 10, 30],
        help="viewer counts of the CPU steps, comma-separated (0 is always measured)",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="latency window")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of CPU per step")
    parser.add_argument("--joins", type=int, default=20, help="mid-lesson joins timed")
    parser.add_argument("--size", default="640x360", help="the classroom's picture, WxH")
    cli.output_options(parser, max_seconds=240.0)
    args = parser.parse_args(argv)
    results = cli.run(main_async, args)
    print(report(results))
    cli.write_json(args.json, asdict(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
