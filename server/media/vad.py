"""Who is speaking, from one talker's own decoded microphone audio (DESIGN §3): one person, one
microphone, so no diarization, only "is this person talking now". Runs inside the mixing child
(server/media/mixing.py) on 20 ms blocks of 48 kHz mono PCM; only times come out.

A block is *voiced* when WebRTC's VAD (`webrtcvad-wheels`: a small GMM that ships inside the
package, 0.02 ms a block) says speech AND the block is loud enough for this talker: WebRTC's VAD
alone calls any speech-like sound speech, including the lesson leaking into the microphone
20 dB under the talker's voice. Loud enough (LevelGate) is over the loud end (95th percentile)
of what this microphone hears while its person is not talking (its last 5 s of that: noise and
the lesson's leak), or within VOICE_BELOW of the talker's own voice level (learnt from its
voiced blocks, starting from a typical browser-AGC level) whatever the background says.

Blocks become stretches by a small state machine: ONSET_NEEDED voiced blocks within
ONSET_WINDOW start a stretch (a click or a cough-like blip does not), dated from the first of
them; it ends HANGOVER seconds after the last voiced block, dated at that block's end, so the
pauses between words and phrases stay inside one stretch but are not counted after its end.
While a stretch lasts, the level a block must reach is lower (hysteresis), so the quiet ends
of phrases do not cut it short.

The same gate decides who is mixed (`heard`): a talker is in the mixes from a block that is
loud enough (voiced or not: the first sound of a word is not held back for the detector) until
MIX_HOLD after the last such block. A quiet talker's noise and lesson leak reach nobody.

Times are the parent's wall clock: a block of n samples that arrived at t covers
[t - n/48000, t].
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import webrtcvad

RATE = 48_000
BLOCK = 960  # 20 ms: a size WebRTC's VAD takes at 48 kHz
BLOCK_S = BLOCK / RATE

MODE = 3  # WebRTC VAD's "very aggressive": the fewest noise blocks called speech
FLOOR_DB = -50.0  # dBFS: quieter than this is never talk
PRIOR_DB = -26.0  # dBFS: a voice level to start from (browser AGC keeps speech about here)
OPEN_MARGIN = 4.0  # dB over the loud end of the background a block must reach to start talk
HOLD_MARGIN = 3.0  # dB over it a block must reach to keep talk going
HOLD_BELOW = 16.0  # dB under the talker's voice level, the same
VOICE_BELOW = 4.0  # dB: a block this close to the talker's voice level is loud enough anyway
VOICE_SMOOTHING = 0.05  # per voiced block: about 0.4 s to follow a talker's level
BACKGROUND_BLOCKS = 250  # 5 s of blocks out of talk: what this microphone hears meanwhile
BACKGROUND_MIN = 25
BACKGROUND_EVERY = 10  # blocks between two looks at the background (a percentile costs)
BACKGROUND_PERCENTILE = 95.0
ONSET_WINDOW = 5
ONSET_NEEDED = 3
HANGOVER = 0.3  # seconds
MIN_STRETCH = 0.1  # seconds: a shorter stretch is not kept (and not reported)
MIX_HOLD = 0.5  # seconds a talker stays in the mixes after its last audible block

Pcm = npt.NDArray[np.int16]
Classifier = Callable[[Pcm], bool]


@dataclass(frozen=True, slots=True)
class Speaking:
    """The talker started (on) or stopped talking; `at` is when, on the parent's clock."""

    on: bool
    at: float


@dataclass(frozen=True, slots=True)
class Stretch:
    """A finished stretch of talk."""

    start: float
    end: float


VoiceEvent = Speaking | Stretch


def webrtc_classifier(mode: int = MODE) -> Classifier:
    vad = webrtcvad.Vad(mode)

    def classify(block: Pcm) -> bool:
        return bool(vad.is_speech(block.tobytes(), RATE))

    return classify


def level_db(block: Pcm) -> float:
    """RMS in dB relative to full scale."""
    samples = block.astype(np.float32)
    mean_square = float(np.dot(samples, samples)) / max(1, block.size)
    return 10.0 * math.log10(mean_square / (32768.0 * 32768.0) + 1e-12)


class LevelGate:
    """How loud a block must be to be this talker's voice (see the module's docstring)."""

    def __init__(self) -> None:
        self.voice = PRIOR_DB
        self._background: deque[float] = deque(maxlen=BACKGROUND_BLOCKS)
        self._loud_background = math.inf  # until this microphone's background is known
        self._blocks = 0

    def threshold(self, *, holding: bool) -> float:
        """The level a block must pass to start talk (or, `holding`, to keep it going): over
        the loud end of this microphone's background, or near the talker's own voice level
        whatever the background (so speech that came before the background was known, and
        so was learnt as background, cannot lock the talker out)."""
        if holding:
            background = self._loud_background + HOLD_MARGIN
            return max(FLOOR_DB, self.voice - HOLD_BELOW, min(background, self.voice - VOICE_BELOW))
        return max(FLOOR_DB, min(self._loud_background + OPEN_MARGIN, self.voice - VOICE_BELOW))

    def audible(self, level: float) -> bool:
        """Loud enough to be mixed (no voice detector here: a listener hears the onset of a
        word whatever it sounds like)."""
        return level > self.threshold(holding=False)

    def observe(self, level: float, *, voiced: bool, speaking: bool) -> None:
        if voiced:
            self.voice += VOICE_SMOOTHING * (level - self.voice)
        if speaking:
            return
        self._background.append(level)
        self._blocks += 1
        if self._blocks % BACKGROUND_EVERY == 0 and len(self._background) >= BACKGROUND_MIN:
            self._loud_background = float(np.percentile(self._background, BACKGROUND_PERCENTILE))


class VoiceDetector:
    """One talker's detector: `push` decoded audio as it arrives, get Speaking/Stretch back."""

    def __init__(self, classify: Classifier | None = None) -> None:
        self._classify = classify or webrtc_classifier()
        self._gate = LevelGate()
        self._pending = np.zeros(0, dtype=np.int16)
        self._onset: deque[tuple[bool, float]] = deque(maxlen=ONSET_WINDOW)  # (voiced, start)
        self._start: float | None = None  # the stretch under way, if any
        self._last_voiced = 0.0  # end of the last voiced block of that stretch
        self._last_audible = -math.inf  # end of the last block loud enough to be mixed

    @property
    def speaking(self) -> bool:
        return self._start is not None

    def push(self, pcm: Pcm, arrived: float) -> list[VoiceEvent]:
        """`pcm`: mono int16 at 48 kHz that arrived (its last sample) at `arrived`."""
        samples = np.concatenate((self._pending, pcm)) if self._pending.size else pcm
        whole = samples.size - samples.size % BLOCK
        events: list[VoiceEvent] = []
        for offset in range(0, whole, BLOCK):
            end = arrived - (samples.size - offset - BLOCK) / RATE
            events += self._block(samples[offset : offset + BLOCK], end)
        self._pending = samples[whole:].copy()
        return events

    def heard(self, arrived: float) -> bool:
        """Whether the block that arrived at `arrived` goes into the mixes: one loud enough
        came at most MIX_HOLD before it (so the pauses between words stay in), or after it (a
        block still in the jitter buffer: the onset of a word is not cut). A talker who is
        quiet is not mixed at all: neither the noise nor the lesson leaking into their
        microphone reaches the others, and a room where nobody talks costs no encoding."""
        return arrived - self._last_audible <= MIX_HOLD

    def idle(self, now: float) -> list[VoiceEvent]:
        """No audio for a while (a talker who stopped sending): end a stretch past its
        hangover."""
        if self._start is not None and now - self._last_voiced > HANGOVER + BLOCK_S:
            return self._finish()
        return []

    def close(self) -> list[VoiceEvent]:
        """The talker left: a stretch under way ends at its last voiced block."""
        return self._finish() if self._start is not None else []

    def _block(self, block: Pcm, end: float) -> list[VoiceEvent]:
        level = level_db(block)
        if self._gate.audible(level):
            self._last_audible = end
        holding = self._start is not None
        loud = level > self._gate.threshold(holding=holding)
        voiced = loud and self._classify(block)
        self._gate.observe(
            level, voiced=voiced and level > self._gate.threshold(holding=False), speaking=holding
        )
        if holding:
            if voiced:
                self._last_voiced = end
            elif end - self._last_voiced > HANGOVER:
                return self._finish()
            return []
        self._onset.append((voiced, end - BLOCK_S))
        if sum(v for v, _ in self._onset) < ONSET_NEEDED:
            return []
        self._start = next(start for v, start in self._onset if v)
        self._last_voiced = end
        self._onset.clear()
        return [Speaking(True, self._start)]

    def _finish(self) -> list[VoiceEvent]:
        assert self._start is not None
        start, end = self._start, self._last_voiced
        self._start = None
        self._onset.clear()
        off = Speaking(False, end)
        return [Stretch(start, end), off] if end - start >= MIN_STRETCH else [off]
