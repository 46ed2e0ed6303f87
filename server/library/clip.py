"""A generated lesson clip: a moving test picture with a visible clock, the frame number as
machine-readable blocks, and a tone. The demo room and the tests make theirs with this, so no
media is ever committed.

The frame number is drawn twice across the top of the picture as 16 large black/white blocks,
the second row inverted: `read_frame_number` reads it back from a decoded (lossy) frame, and
the inverted row tells a clean read from a frame caught mid-change.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType
from numpy.typing import NDArray

BITS = 16
# Seven-segment layout: a, b, c, d, e, f, g.
_SEGMENTS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}


@dataclass(frozen=True, slots=True)
class ClipSpec:
    seconds: float = 4.0
    fps: int = 30
    width: int = 640
    height: int = 360
    tone_hz: float = 440.0
    sample_rate: int = 48000


@dataclass(frozen=True, slots=True)
class Encoding:
    """How to write a clip: a phone's MP4 by default; see `WEBM_VP8` for a served one."""

    container: str = "mp4"
    video_codec: str = "libx264"
    audio_codec: str = "aac"
    pixel_format: str = "yuv420p"
    video_options: tuple[tuple[str, str], ...] = ()
    audio_options: tuple[tuple[str, str], ...] = ()
    gop: int | None = None
    # A keyframe on every whole second and no other, as a served rendition has (the ingest's
    # rule, server/library/transcode.py).
    keyframe_each_second: bool = False
    video_bitrate: int | None = None
    audio_bitrate: int | None = None


PHONE_MP4 = Encoding()
MOV = Encoding(container="mov")
WEBM_VP8 = Encoding(
    container="webm",
    video_codec="libvpx",
    audio_codec="libopus",
    video_options=(("auto-alt-ref", "0"), ("lag-in-frames", "0"), ("deadline", "realtime")),
    audio_options=(("frame_duration", "60"),),  # as ingest writes it
)
# Straight into the served format, as a 360p rendition is (the demo lesson, made in seconds
# rather than made as a phone video and transcoded).
SERVED_360P = Encoding(
    container="webm",
    video_codec="libvpx",
    audio_codec="libopus",
    video_options=(
        ("auto-alt-ref", "0"),
        ("lag-in-frames", "0"),
        ("deadline", "realtime"),
        ("cpu-used", "16"),
        ("keyint_min", "30"),
    ),
    audio_options=(("frame_duration", "60"),),
    keyframe_each_second=True,
    video_bitrate=700_000,
    audio_bitrate=64_000,
)


def draw(spec: ClipSpec, number: int) -> NDArray[np.uint8]:
    """Frame `number` as an RGB picture."""
    h, w = spec.height, spec.width
    image = np.empty((h, w, 3), dtype=np.uint8)
    # A dark background with a bar sweeping across once a second: visibly moving.
    image[:] = (40, 60, 90)
    bar = (number % spec.fps) * w // spec.fps
    image[:, bar : bar + max(4, w // 40)] = (230, 200, 40)
    # Block edges in proportion to the width, so a scaled rendition reads the same.
    size = w / (BITS + 2)
    for row, invert in ((0, False), (1, True)):
        top, bottom = round(size / 2 + row * size), round(size / 2 + (row + 1) * size)
        for bit in range(BITS):
            on = bool((number >> (BITS - 1 - bit)) & 1) ^ invert
            left, right = round(size + bit * size), round(size + (bit + 1) * size)
            image[top:bottom, left:right] = 255 if on else 0
    seconds = number / spec.fps
    clock = f"{int(seconds // 60):02d}:{int(seconds % 60):02d}.{number % spec.fps:02d}"
    _draw_text(image, clock, top=h // 2, height=h // 5)
    _draw_text(image, f"{number:05d}", top=h // 2 + h // 4, height=h // 8)
    return image


def _draw_text(image: NDArray[np.uint8], text: str, *, top: int, height: int) -> None:
    width = height // 2
    stroke = max(2, height // 10)
    left = (image.shape[1] - len(text) * (width + stroke * 2)) // 2
    for char in text:
        if char in _SEGMENTS:
            _draw_digit(image, _SEGMENTS[char], left, top, width, height, stroke)
        elif char in ":.":
            y = top + height - stroke if char == "." else top + height // 3
            image[y : y + stroke, left + width // 2 : left + width // 2 + stroke] = 255
            if char == ":":
                y = top + 2 * height // 3
                image[y : y + stroke, left + width // 2 : left + width // 2 + stroke] = 255
        left += width + stroke * 2


def _draw_digit(
    image: NDArray[np.uint8], segments: str, x: int, y: int, w: int, h: int, s: int
) -> None:
    half = h // 2
    boxes = {
        "a": (y, y + s, x, x + w),
        "b": (y, y + half, x + w - s, x + w),
        "c": (y + half, y + h, x + w - s, x + w),
        "d": (y + h - s, y + h, x, x + w),
        "e": (y + half, y + h, x, x + s),
        "f": (y, y + half, x, x + s),
        "g": (y + half - s // 2, y + half + s - s // 2, x, x + w),
    }
    for name in segments:
        y0, y1, x0, x1 = boxes[name]
        image[y0:y1, x0:x1] = 255


def read_frame_number(frame: av.VideoFrame) -> int | None:
    """The number drawn into a decoded frame of any size, or None if it does not read clean."""
    gray = frame.to_ndarray(format="gray")
    w = gray.shape[1]
    size = w / (BITS + 2)
    number = 0
    for bit in range(BITS):
        x = int(size + bit * size + size / 2)
        upper = gray[int(size / 2 + size / 2), x]
        lower = gray[int(size / 2 + size + size / 2), x]
        if (upper > 128) == (lower > 128) or min(abs(int(upper) - 128), abs(int(lower) - 128)) < 48:
            return None
        number = (number << 1) | int(upper > 128)
    return number


def tone(spec: ClipSpec, start_sample: int, samples: int) -> NDArray[np.int16]:
    """A sine tone with a short beep at every whole second, for ears checking sync."""
    t = (np.arange(start_sample, start_sample + samples) / spec.sample_rate).astype(np.float64)
    beep = (t % 1.0) < 0.08
    freq = np.where(beep, spec.tone_hz * 2, spec.tone_hz)
    wave = 0.25 * np.sin(2 * math.pi * freq * t)
    return (wave * 32767).astype(np.int16)


def write_clip(
    path: Path,
    spec: ClipSpec | None = None,
    encoding: Encoding = PHONE_MP4,
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Write a clip of `spec` to `path` with `encoding`; returns `path`. `progress(fraction)`
    is told how far it is, about twice a second of clip."""
    spec = spec or ClipSpec()
    frames = round(spec.seconds * spec.fps)
    with av.open(str(path), mode="w", format=encoding.container) as output:
        video: Any = output.add_stream(encoding.video_codec, rate=spec.fps)
        video.width, video.height = spec.width, spec.height
        video.pix_fmt = encoding.pixel_format
        video.codec_context.gop_size = encoding.gop or spec.fps
        video.options = dict(encoding.video_options)
        if encoding.video_bitrate:
            video.bit_rate = encoding.video_bitrate
        video.codec_context.thread_count = min(4, os.cpu_count() or 1)
        audio: Any = output.add_stream(encoding.audio_codec, rate=spec.sample_rate)
        audio.layout = "mono"
        audio.options = dict(encoding.audio_options)
        if encoding.audio_bitrate:
            audio.bit_rate = encoding.audio_bitrate
        audio_per_frame = spec.sample_rate // spec.fps
        written = 0
        for number in range(frames):
            picture = av.VideoFrame.from_ndarray(draw(spec, number), format="rgb24")
            picture.pts = number
            picture.time_base = Fraction(1, spec.fps)
            picture = picture.reformat(format=encoding.pixel_format)
            if encoding.keyframe_each_second:
                whole_second = number % spec.fps == 0
                picture.pict_type = PictureType.I if whole_second else PictureType.NONE
            for packet in video.encode(picture):
                output.mux(packet)
            samples = tone(spec, written, audio_per_frame)
            sound = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            sound.sample_rate = spec.sample_rate
            sound.pts = written
            sound.time_base = Fraction(1, spec.sample_rate)
            written += audio_per_frame
            for packet in audio.encode(sound):
                output.mux(packet)
            if progress is not None and number % (spec.fps // 2 or 1) == 0:
                progress(min(0.999, number / frames))
        for packet in video.encode(None):
            output.mux(packet)
        for packet in audio.encode(None):
            output.mux(packet)
    return path
