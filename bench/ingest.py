"""Ingest speed: seconds of lesson transcoded per second of wall time, per rendition.

    .venv/bin/python -m bench.ingest [--seconds 60] [--width 1920 --height 1080] [--grain 12]
                                     [--source FILE]

Makes a generated lesson clip (`server/library/clip.py`, phone-style H.264/AAC MP4) unless given
a source; `--grain` adds camera-like noise to every picture (a classroom filmed on a phone is
much harder to compress than the clean test picture, and slower to encode). Then it runs the
ingest's transcoder (`server/library/transcode.py`) once per rendition in this process, as the
ingest's child process does, without its lowered priority. Prints wall time, CPU time (all
threads), speed (x real time), cores used and the output's bit rate for each rendition.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from server.library.clip import ClipSpec, draw, tone, write_clip
from server.library.renditions import AUDIO_BITRATE, RENDITIONS, plan_for
from server.library.transcode import encode, probe


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    """The 1-minute load average: other work on the machine slows the encoder."""
    return f"{os.getloadavg()[0]:.2f}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_grainy_clip(path: Path, spec: ClipSpec, grain: float) -> None:
    """The test picture with fresh noise in every frame, as a phone would record it (H.264 at
    about 8 Mbit/s for 1080p), with the clip's tone."""
    rng = np.random.default_rng(1)
    noise = [rng.normal(0, grain, (spec.height, spec.width, 1)) for _ in range(8)]
    with av.open(str(path), "w", format="mp4") as out:
        video: Any = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.bit_rate = spec.width * spec.height * 4
        video.options = {"preset": "veryfast"}
        audio: Any = out.add_stream("aac", rate=spec.sample_rate)
        audio.layout = "mono"
        per_frame = spec.sample_rate // spec.fps
        for number in range(round(spec.seconds * spec.fps)):
            picture = draw(spec, number) + noise[number % len(noise)]
            frame = av.VideoFrame.from_ndarray(
                np.clip(picture, 0, 255).astype(np.uint8), format="rgb24"
            )
            frame.pts, frame.time_base = number, Fraction(1, spec.fps)
            for packet in video.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
            samples = tone(spec, number * per_frame, per_frame).reshape(1, -1)
            sound = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            sound.sample_rate, sound.pts = spec.sample_rate, number * per_frame
            for packet in audio.encode(sound):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--grain", type=float, default=0.0, help="noise, 0-255 (default none)")
    parser.add_argument("--source", type=Path, help="a video to ingest instead of a clip")
    parser.add_argument(
        "--repeat", type=int, default=1, help="encode each rendition N times, keep the fastest"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; load {load()}")
    with tempfile.TemporaryDirectory(prefix="cocoach-ingest-") as tmp:
        source = args.source
        if source is None:
            source = Path(tmp) / "lesson.mp4"
            started = time.monotonic()
            spec = ClipSpec(seconds=args.seconds, width=args.width, height=args.height)
            if args.grain:
                write_grainy_clip(source, spec, args.grain)
            else:
                write_clip(source, spec)
            print(f"generated {source.name} in {time.monotonic() - started:.1f} s")
        info = probe(source)
        print(
            f"source: {info.width}x{info.height} {info.video_codec}/{info.audio_codec} "
            f"{info.fps:g} fps, {info.duration:.1f} s, {info.bytes / 1e6:.1f} MB"
        )
        print("| rendition | size | wall s | CPU s | x real time | cores | kbit/s |")
        print("|---|---|---|---|---|---|---|")
        total_wall = 0.0
        for plan in plan_for(info.width, info.height) or RENDITIONS[:1]:
            out = Path(tmp) / f"{plan.name}.webm"
            best: tuple[float, float] | None = None
            for _ in range(max(1, args.repeat)):
                cpu, wall = cpu_seconds(), time.monotonic()
                done = encode(
                    source,
                    out,
                    short_side=plan.short_side,
                    video_bitrate=plan.video_bitrate,
                    audio_bitrate=AUDIO_BITRATE,
                )
                run = (time.monotonic() - wall, cpu_seconds() - cpu)
                best = run if best is None or run[0] < best[0] else best
            assert best is not None
            wall, cpu = best
            total_wall += wall
            print(
                f"| {plan.name} | {done.width}x{done.height} | {wall:.1f} | {cpu:.1f} "
                f"| {done.duration / wall:.2f} | {cpu / wall:.2f} "
                f"| {done.bytes * 8 / done.duration / 1000:.0f} |"
            )
        print(
            f"whole ingest: {info.duration:.0f} s of lesson in {total_wall:.1f} s "
            f"({info.duration / total_wall:.2f} x real time); load {load()}"
        )


if __name__ == "__main__":
    main()
