"""The ingest's media work, run as a child process so that a crash, a hostile file or a huge one
cannot take a worker down, and a job can be cancelled by killing it:

    python -m server.library.transcode probe INPUT
    python -m server.library.transcode encode INPUT OUTPUT --short-side 360 --video-bitrate 700000
    python -m server.library.transcode encode INPUT OUTPUT ... --start 12.5 --end 70
    python -m server.library.transcode clip OUTPUT --seconds 60
    python -m server.library.transcode hold DIRECTORY 640x360 [WxH ...]

Each prints `done {json}` when it succeeds: `probe` describes the source, `encode` the rendition
it wrote (after `progress 0.42` lines as it goes), `clip` writes a generated lesson clip (the
demo), `hold` writes the hold frame of each picture size (`DIRECTORY/WxH.vp8`,
server/library/holdframe.py). A failure prints
`error: <message>` on stdout and exits 1; an input that is not a video says `not a video: ...`.

`encode` writes one rendition: VP8 + Opus in WebM, constant frame rate (at most 30 fps), a
keyframe on every whole second and no alt-ref or lagged frames (libvpx `auto-alt-ref=0`,
`lag-in-frames=0`), so WebRTC serving can packetize the packets as they are. The picture is
turned upright (phones record sideways and say so in a display matrix), scaled so its short
side is at most `--short-side` (never up), with even dimensions and the aspect ratio kept.
Audio is Opus at 48 kHz, mono or stereo as the source; a source without sound gets silence,
so every rendition has both tracks. Output goes to OUTPUT.part and is renamed when complete.

With `--start`/`--end` (seconds of the source from its first picture) `encode` cuts: it seeks
to the keyframe at or before `start`, decodes from there, drops what comes before `start` (a
picture within half a frame of it is the first kept) and stops at `end`, so the rendition's
time 0 is the picture at `start` and its first frame a keyframe (a clip, docs/groups.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.audio.frame import AudioFrame
from av.filter import Graph
from av.video.frame import PictureType, VideoFrame

from server.library.renditions import output_fps
from server.lifeline import die_with_parent

AUDIO_RATE = 48000
OPUS_FRAME = 960  # 20 ms at 48 kHz
PROGRESS_EVERY = 0.5  # seconds of wall time between progress lines
MAX_BAD_PACKETS = 100  # undecodable packets tolerated before the file is called broken
IMAGE_FORMATS = ("image2", "_pipe", "gif", "apng", "webp")


class NotAVideo(Exception):
    """The input cannot be read as a video; the message says why."""


class BadCut(ValueError):
    """A cut (`start`, `end`) that is not a range of the source; the message says why."""


@dataclass(frozen=True)
class Probe:
    container: str
    video_codec: str
    audio_codec: str | None
    width: int  # as displayed (after rotation)
    height: int
    fps: float
    rotation: int
    duration: float
    bytes: int


@dataclass(frozen=True)
class Encoded:
    width: int
    height: int
    fps: int
    frames: int
    duration: float
    bytes: int


# ---- probe --------------------------------------------------------------------------------


def probe(path: Path) -> Probe:
    return _probe(path)[0]


def _probe(path: Path) -> tuple[Probe, float]:
    """The probe, and the source time of its first picture (what a cut counts from)."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise NotAVideo(f"not a video: cannot read it ({_reason(exc)})") from None
    with container:
        name = container.format.name
        if not container.streams.video:
            kind = "audio only" if container.streams.audio else "no video stream"
            raise NotAVideo(f"not a video: {kind} ({name})")
        if any(name == f or name.endswith(f) for f in IMAGE_FORMATS):
            raise NotAVideo(f"not a video: a still image ({name})")
        stream = container.streams.video[0]
        if stream.codec_context.codec is None:
            raise NotAVideo(f"not a video: no decoder for its video ({stream.codec_context.name})")
        duration = _duration(container, stream) or _scanned_duration(path)
        if duration <= 0:
            raise NotAVideo(f"not a video: it has no duration ({name})")
        first = _first_frame(container)
        if first is None:
            raise NotAVideo(f"not a video: no picture could be decoded ({name})")
        rotation = _rotation(first)
        width, height = first.width, first.height
        if rotation in (90, -90, 270, -270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        probed = Probe(
            container=name,
            video_codec=stream.codec_context.name,
            audio_codec=audio,
            width=width,
            height=height,
            fps=round(float(rate), 3) if rate else 0.0,
            rotation=rotation,
            duration=round(duration, 3),
            bytes=path.stat().st_size,
        )
        return probed, float(first.time) if first.time is not None else 0.0


def _reason(exc: av.error.FFmpegError) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip()


def _duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / av.time_base
    return 0.0


def _scanned_duration(path: Path) -> float:
    """A file written as a stream (a live recording, or one cut short when its worker died)
    says no duration: its last video packet does."""
    end = 0.0
    with av.open(str(path), metadata_errors="ignore") as container:
        for packet in container.demux(video=0):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


def _first_frame(container: Any) -> VideoFrame | None:
    bad = 0
    for packet in container.demux(video=0):
        try:
            for frame in packet.decode():
                if isinstance(frame, VideoFrame):
                    return frame
        except av.error.FFmpegError:
            bad += 1
            if bad > MAX_BAD_PACKETS:
                return None
    return None


def _rotation(frame: VideoFrame) -> int:
    """Degrees to turn the picture clockwise to show it upright, one of 0, 90, 180, 270."""
    # `frame.rotation` is the display matrix's counter-clockwise angle (FFmpeg's convention);
    # ffmpeg's own autorotate turns by its negation.
    return round(-frame.rotation / 90.0) * 90 % 360


# ---- encode -------------------------------------------------------------------------------


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Scale so the short side is at most `short_side`, keeping the aspect ratio, never up,
    both dimensions even."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def encode(
    source: Path,
    output: Path,
    *,
    short_side: int,
    video_bitrate: int,
    audio_bitrate: int,
    progress: Any = None,
    start: float = 0.0,
    end: float | None = None,
) -> Encoded:
    """Write one rendition of `source` to `output`; `progress(fraction)` is called as it goes.
    `start`/`end` (seconds of the source from its first picture) cut a range of it: time 0 of
    the output is the picture at `start`."""
    if not math.isfinite(start) or start < 0:
        raise BadCut(f"a cut starts at a number of seconds >= 0, not {start}")
    if end is not None and not (math.isfinite(end) and end > start):
        raise BadCut(f"a cut ends after it starts ({start} s), not at {end}")
    info, first = _probe(source)
    fps = output_fps(info.fps)
    width, height = target_size(info.width, info.height, short_side)
    cut: _Cut | None = None
    if start > 0 or end is not None:
        if start >= info.duration:
            raise BadCut(f"the cut starts at {start} s, past the end ({info.duration} s)")
        cut = _Cut(first, start, end, 0.5 / (info.fps or fps))
    partial = output.with_name(output.name + ".part")
    with (
        _open_input(source, cut.keep_from if cut is not None and start > 0 else None) as inp,
        av.open(str(partial), mode="w", format="webm") as out,
    ):
        in_video = inp.streams.video[0]
        in_audio = inp.streams.audio[0] if inp.streams.audio else None
        video = _video_stream(out, width, height, fps, video_bitrate)
        channels = min(2, in_audio.codec_context.channels) if in_audio is not None else 1
        layout = "stereo" if channels == 2 else "mono"
        audio: Any = out.add_stream("libopus", rate=AUDIO_RATE)
        audio.layout = layout
        audio.bit_rate = audio_bitrate
        # 60 ms Opus frames: a third of the packets of the default 20 ms. Every packet costs the
        # server the same to send whatever its size, and audio was 50 of a viewer's 80 packets/s.
        audio.options = {"frame_duration": "60"}
        job = _Job(out, video, audio, fps, width, height, info, layout, progress, cut)
        streams = [in_video] + ([in_audio] if in_audio is not None else [])
        for packet in inp.demux(*streams):
            if cut is not None:  # past the end of the cut: no need to decode what follows
                if job.video_done and (in_audio is None or job.audio_done):
                    break
                if job.video_done and packet.stream.index == in_video.index:
                    continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                job.bad_packet()
                continue
            for frame in frames:
                if isinstance(frame, VideoFrame):
                    job.video_frame(frame)
                elif isinstance(frame, AudioFrame):
                    job.audio_frame(frame)
        job.finish(silent=in_audio is None)
    if job.frames == 0:
        partial.unlink(missing_ok=True)
        if cut is not None:
            raise BadCut(f"the cut from {start} s to {end} s has no picture")
        raise NotAVideo("not a video: no picture could be decoded")
    partial.replace(output)
    return Encoded(
        width=width,
        height=height,
        fps=fps,
        frames=job.frames,
        duration=round(job.frames / fps, 3),
        bytes=output.stat().st_size,
    )


@dataclass(frozen=True)
class _Cut:
    """A range of the source to encode, in its own time (its first picture at `first`)."""

    first: float  # source time of the source's first picture
    start: float  # seconds from it
    end: float | None
    tolerance: float  # half a source frame: a picture this close to `start` is the one at it

    @property
    def keep_from(self) -> float:
        """Source time of the earliest picture kept."""
        return self.first + self.start - self.tolerance

    @property
    def stop_at(self) -> float | None:
        """Source time from which pictures are no longer kept."""
        return None if self.end is None else self.first + self.end - self.tolerance


def _open_input(source: Path, at: float | None) -> Any:
    """The source, opened, and positioned to decode from the keyframe at or before source time
    `at` (None: from the beginning)."""
    container = av.open(str(source), metadata_errors="ignore")
    container.streams.video[0].thread_type = "AUTO"
    if at is None:
        return container
    try:
        if _seek(container, at):
            return container
    except av.error.FFmpegError:
        pass
    # The container could not seek there (no index, or timestamps it seeks by are not the
    # pictures'): decode from the beginning instead; the cut drops what comes before.
    container.close()
    container = av.open(str(source), metadata_errors="ignore")
    container.streams.video[0].thread_type = "AUTO"
    return container


def _seek(container: Any, at: float) -> bool:
    """Seek backward to the keyframe at or before source time `at`: True when the first
    picture decoded from there is indeed not after `at` (the container then stands there)."""
    stream = container.streams.video[0]
    if stream.time_base is None:
        return False
    ticks = math.floor(at / stream.time_base)
    container.seek(ticks, stream=stream, backward=True)
    landed = _first_frame(container)
    if landed is None or landed.time is None or landed.time > at:
        return False
    container.seek(ticks, stream=stream, backward=True)
    return True


def _video_stream(out: Any, width: int, height: int, fps: int, bitrate: int) -> Any:
    stream = out.add_stream("libvpx", rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.bit_rate = bitrate
    context = stream.codec_context
    context.time_base = Fraction(1, fps)
    context.gop_size = fps
    context.thread_count = min(4, os.cpu_count() or 1)
    stream.options = {
        "auto-alt-ref": "0",  # no hidden alt-ref frames: every packet is a shown frame
        "lag-in-frames": "0",  # no look-ahead: packets come out in order, one per frame
        "keyint_min": str(fps),  # no extra keyframes at scene cuts: exactly one a second
        # Measured against `good`/`cpu-used=4`: 10-20 % less CPU, the same PSNR within 0.1 dB
        # (docs/benchmarks.md).
        "deadline": "realtime",
        "cpu-used": "8",
        "maxrate": str(bitrate * 3 // 2),
        "bufsize": str(bitrate * 2),
        "qmin": "4",
        "qmax": "56",
    }
    return stream


class _Job:
    """The filter graphs and encoders of one rendition, fed frame by frame."""

    def __init__(
        self,
        out: Any,
        video: Any,
        audio: Any,
        fps: int,
        width: int,
        height: int,
        info: Probe,
        layout: str,
        progress: Any,
        cut: _Cut | None = None,
    ) -> None:
        self.out, self.video, self.audio = out, video, audio
        self.fps, self.width, self.height = fps, width, height
        self.info, self.layout, self.progress = info, layout, progress
        self.cut = cut
        self.video_done = False  # a cut: the pictures up to its end are all in
        self.audio_done = False  # a cut: the sound up to its end is all in
        self._audio_limit: int | None = None  # a cut: output samples up to its end
        self.frames = 0
        self.samples = 0
        self.origin: float | None = None  # source time of the first picture: output time 0
        self._first_pts = 0
        self.bad = 0
        self._video_graph: Graph | None = None
        self._audio_graph: Graph | None = None
        self._early_audio: list[AudioFrame] = []
        self._last_report = 0.0

    def bad_packet(self) -> None:
        self.bad += 1
        if self.bad > MAX_BAD_PACKETS:
            raise NotAVideo(f"the file is damaged: over {MAX_BAD_PACKETS} undecodable packets")

    # video

    def video_frame(self, frame: VideoFrame) -> None:
        if frame.pts is None or frame.time_base is None:
            return
        cut = self.cut
        if cut is not None:
            at = float(frame.pts * frame.time_base)
            if self.video_done or at < cut.keep_from:
                return
            if cut.stop_at is not None and at >= cut.stop_at:
                self.video_done = True
                return
        if self.origin is None:
            self.origin = float(frame.pts * frame.time_base)
            self._first_pts = frame.pts
            if cut is not None and cut.end is not None:
                end = cut.first + cut.end
                self._audio_limit = round((end - self.origin) * AUDIO_RATE)
            self._video_graph = self._make_video_graph(frame)
            for early in self._early_audio:
                self.audio_frame(early)
            self._early_audio.clear()
        assert self._video_graph is not None
        # Time from the first picture, exact in the source's time base: the fps filter then
        # makes constant-rate frames from 0, picking each one's source frame without rounding
        # errors.
        frame.pts -= self._first_pts
        self._video_graph.push(frame)
        self._drain_video()

    def _make_video_graph(self, first: VideoFrame) -> Graph:
        graph = Graph()
        chain = [
            graph.add_buffer(
                width=first.width,
                height=first.height,
                format=first.format,
                time_base=first.time_base,
            )
        ]
        turn = _rotation(first)
        if turn == 90:
            chain.append(graph.add("transpose", "clock"))
        elif turn == 270:
            chain.append(graph.add("transpose", "cclock"))
        elif turn == 180:
            chain += [graph.add("hflip"), graph.add("vflip")]
        chain.append(graph.add("fps", f"fps={self.fps}:round=near:eof_action=pass"))
        chain.append(graph.add("scale", f"{self.width}:{self.height}:flags=bicubic"))
        chain.append(graph.add("format", "yuv420p"))
        chain.append(graph.add("buffersink"))
        graph.link_nodes(*chain).configure()
        return graph

    def _drain_video(self) -> None:
        assert self._video_graph is not None
        while True:
            try:
                frame = self._video_graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            self._encode_video(frame)

    def _encode_video(self, frame: VideoFrame | None) -> None:
        if frame is not None:
            frame.pts = self.frames
            frame.time_base = Fraction(1, self.fps)
            # A keyframe on every whole second, whatever libvpx would choose.
            frame.pict_type = PictureType.I if self.frames % self.fps == 0 else PictureType.NONE
            self.frames += 1
            self._report()
        for packet in self.video.encode(frame):
            self.out.mux(packet)

    # audio

    def audio_frame(self, frame: AudioFrame) -> None:
        if frame.pts is None or frame.time_base is None:
            return
        cut = self.cut
        if cut is not None:
            at = float(frame.pts * frame.time_base)
            if cut.end is not None and at >= cut.first + cut.end:
                self.audio_done = True
            # Sound wholly before the first picture kept is dropped here; the resampler trims
            # the part of a frame before it (first_pts=0).
            if self.audio_done or at + frame.samples / frame.sample_rate <= (
                cut.keep_from if self.origin is None else self.origin
            ):
                return
        if self.origin is None:
            self._early_audio.append(frame)  # wait for the first picture to set time 0
            return
        if self._audio_graph is None:
            self._audio_graph = self._make_audio_graph(frame)
        rate = frame.sample_rate
        frame.pts = round((float(frame.pts * frame.time_base) - self.origin) * rate)
        frame.time_base = Fraction(1, rate)
        self._audio_graph.push(frame)
        self._drain_audio()

    def _make_audio_graph(self, first: AudioFrame) -> Graph:
        graph = Graph()
        chain = [
            graph.add_abuffer(
                sample_rate=first.sample_rate,
                format=first.format.name,
                layout=first.layout.name,
                time_base=Fraction(1, first.sample_rate),
            ),
            # async: stretch, pad with silence or trim so sound stays on the picture's clock;
            # first_pts=0 pads (or trims) the start to output time 0.
            graph.add("aresample", f"{AUDIO_RATE}:async=1000:first_pts=0"),
            graph.add("aformat", f"sample_fmts=s16:channel_layouts={self.layout}"),
            graph.add("abuffersink"),
        ]
        graph.link_nodes(*chain).configure()
        graph.set_audio_frame_size(OPUS_FRAME)
        return graph

    def _drain_audio(self) -> None:
        assert self._audio_graph is not None
        while True:
            try:
                frame = self._audio_graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            assert isinstance(frame, AudioFrame)
            self._encode_audio(frame)

    def _encode_audio(self, frame: AudioFrame | None) -> None:
        if frame is not None:
            if self._audio_limit is not None and self.samples >= self._audio_limit:
                return  # a cut: its sound stops at its end
            frame.pts = self.samples
            frame.time_base = Fraction(1, AUDIO_RATE)
            self.samples += frame.samples
        for packet in self.audio.encode(frame):
            self.out.mux(packet)

    def _video_end_samples(self) -> int:
        return self.frames * AUDIO_RATE // self.fps

    def _silence_until(self, samples: int) -> None:
        channels = 2 if self.layout == "stereo" else 1
        while self.samples < samples:
            frame = AudioFrame(format="s16", layout=self.layout, samples=OPUS_FRAME)
            for plane in frame.planes:
                plane.update(bytes(OPUS_FRAME * 2 * channels))
            frame.sample_rate = AUDIO_RATE
            self._encode_audio(frame)

    # end

    def finish(self, *, silent: bool) -> None:
        if self._video_graph is not None:
            self._video_graph.push(None)
            self._drain_video()
        self._encode_video(None)
        if self._audio_graph is not None:
            self._audio_graph.push(None)
            self._drain_audio()
        # A source without sound, or whose sound stops early, is filled with silence.
        self._silence_until(self._video_end_samples() - OPUS_FRAME + 1)
        self._encode_audio(None)
        if self.progress is not None:
            self.progress(1.0)

    def _report(self) -> None:
        now = time.monotonic()
        if self.progress is None or now - self._last_report < PROGRESS_EVERY:
            return
        self._last_report = now
        length = self.info.duration
        if self.cut is not None:  # the part of the source the cut covers
            length = min(length, self.cut.end or length) - self.cut.start
        done = self.frames / self.fps / length if length > 0 else 0.0
        self.progress(min(0.999, done))


# ---- the child process --------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT, not {text!r}") from None


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.library.transcode")
    parser.add_argument("--parent", type=int, default=0, help="die when this process dies")
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority")
    commands = parser.add_subparsers(dest="command", required=True)
    probe_cmd = commands.add_parser("probe")
    probe_cmd.add_argument("input", type=Path)
    encode_cmd = commands.add_parser("encode")
    encode_cmd.add_argument("input", type=Path)
    encode_cmd.add_argument("output", type=Path)
    encode_cmd.add_argument("--short-side", type=int, required=True)
    encode_cmd.add_argument("--video-bitrate", type=int, required=True)
    encode_cmd.add_argument("--audio-bitrate", type=int, default=64_000)
    encode_cmd.add_argument("--start", type=float, default=0.0, help="cut from (seconds)")
    encode_cmd.add_argument("--end", type=float, default=None, help="cut to (seconds)")
    served_cmd = commands.add_parser("served")
    served_cmd.add_argument("output", type=Path)
    served_cmd.add_argument("--seconds", type=float, default=60.0)
    hold_cmd = commands.add_parser("hold")
    hold_cmd.add_argument("directory", type=Path)
    hold_cmd.add_argument("sizes", nargs="+", type=_size)
    args = parser.parse_args(argv)
    if args.parent:
        die_with_parent(args.parent)
    if args.nice:
        os.nice(args.nice)
    try:
        if args.command == "probe":
            _say("done " + json.dumps(asdict(probe(args.input))))
        elif args.command == "encode":
            done = encode(
                args.input,
                args.output,
                short_side=args.short_side,
                video_bitrate=args.video_bitrate,
                audio_bitrate=args.audio_bitrate,
                progress=lambda p: _say(f"progress {p:.4f}"),
                start=args.start,
                end=args.end,
            )
            _say("done " + json.dumps(asdict(done)))
        elif args.command == "served":
            from server.library.clip import SERVED_360P, ClipSpec, write_clip

            spec = ClipSpec(seconds=args.seconds)
            partial = args.output.with_name(args.output.name + ".part")
            write_clip(partial, spec, SERVED_360P, progress=lambda p: _say(f"progress {p:.4f}"))
            partial.replace(args.output)
            frames = round(spec.seconds * spec.fps)
            made: dict[str, float] = {"width": spec.width, "height": spec.height, "fps": spec.fps}
            made |= {"duration": round(frames / spec.fps, 3), "bytes": args.output.stat().st_size}
            _say("done " + json.dumps(made))
        elif args.command == "hold":
            from server.library.holdframe import hold_frame

            args.directory.mkdir(parents=True, exist_ok=True)
            for width, height in args.sizes:
                path = args.directory / f"{width}x{height}.vp8"
                partial = path.with_name(path.name + f".{os.getpid()}.part")
                partial.write_bytes(hold_frame(width, height))
                partial.replace(path)
            _say("done " + json.dumps({"sizes": [f"{w}x{h}" for w, h in args.sizes]}))
    except (NotAVideo, BadCut) as exc:
        _say(f"error: {exc}")
        return 1
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        _say(f"error: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
