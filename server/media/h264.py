"""The picture size of an H.264 stream, read from its sequence parameter set (ITU-T H.264
7.3.2.1.1) without a decoder: no codec runs in a server process (docs/videos.md)."""

from __future__ import annotations

from collections.abc import Iterator

NAL_SPS = 7
# Profiles whose SPS carries chroma format, bit depths and scaling lists (7.3.2.1.1).
HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class NotAnSps(ValueError):
    """The bytes hold no sequence parameter set that reads as one."""


def nal_units(stream: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B byte stream: emulation prevention keeps 00 00 01 out of
    every unit, so it splits there (trailing zeros belong to a 4-byte start code)."""
    for piece in stream.split(b"\x00\x00\x01")[1:]:
        nal = piece.rstrip(b"\x00")
        if nal:
            yield nal


def _rbsp(nal: bytes) -> bytes:
    """The payload with emulation prevention bytes (00 00 03) taken out."""
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def bit(self) -> int:
        byte = self.position >> 3
        if byte >= len(self.data):
            raise NotAnSps("the SPS ends early")
        value = (self.data[byte] >> (7 - (self.position & 7))) & 1
        self.position += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        """Unsigned exp-Golomb."""
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise NotAnSps("an exp-Golomb code is too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, next_scale = 8, 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + bits.se() + 256) % 256
        last = next_scale or last


def sps_size(sps: bytes) -> tuple[int, int]:
    """Width and height in pixels, after cropping, of one SPS NAL unit (header byte first)."""
    if not sps or sps[0] & 0x1F != NAL_SPS:
        raise NotAnSps("not an SPS NAL unit")
    bits = _Bits(_rbsp(sps[1:]))
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags, reserved bits, level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.bit()  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    order_type = bits.ue()
    if order_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif order_type == 1:
        bits.bit()  # delta_pic_order_always_zero_flag
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if bits.bit():  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        # CropUnitX and CropUnitY (7-19 to 7-22): chroma subsampling, and fields count twice.
        sub_width, sub_height = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}.get(
            chroma_format, (1, 1)
        )
        width -= sub_width * (left + right)
        height -= sub_height * (2 - frame_mbs_only) * (top + bottom)
    if width <= 0 or height <= 0:
        raise NotAnSps(f"the SPS gives a picture of {width}x{height}")
    return width, height


def picture_size(keyframe: bytes) -> tuple[int, int]:
    """The picture size of an H.264 key frame in Annex B form (its SPS comes with it)."""
    for nal in nal_units(keyframe):
        if nal and nal[0] & 0x1F == NAL_SPS:
            return sps_size(nal)
    raise NotAnSps("the key frame carries no SPS")
