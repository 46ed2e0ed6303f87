"""The H.264 picture size read from the SPS (server/media/h264.py), against what libx264 (run
here, in the test process, never in a server) writes for odd and even sizes and profiles."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest

from server.media.h264 import NotAnSps, nal_units, picture_size


def keyframe(width: int, height: int, profile: str) -> bytes:
    encoder: Any = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"profile": profile, "x264-params": "repeat-headers=1"}
    frame = av.VideoFrame.from_ndarray(
        np.zeros((height * 3 // 2, width), np.uint8), format="yuv420p"
    )
    packets = [bytes(p) for p in encoder.encode(frame)] + [bytes(p) for p in encoder.encode(None)]
    return packets[0]


@pytest.mark.parametrize("profile", ["baseline", "high"])
@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (1920, 1080), (322, 182), (176, 144)])
def test_the_picture_size_comes_from_the_sps(size: tuple[int, int], profile: str) -> None:
    assert picture_size(keyframe(*size, profile)) == size


def test_a_frame_without_an_sps_is_refused() -> None:
    frame = keyframe(320, 180, "baseline")
    without = b"".join(b"\x00\x00\x00\x01" + nal for nal in nal_units(frame) if nal[0] & 0x1F != 7)
    with pytest.raises(NotAnSps):
        picture_size(without)
    with pytest.raises(NotAnSps):
        picture_size(b"\x00\x00\x01\x67")  # an SPS that ends at once
