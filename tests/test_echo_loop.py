"""Feedback through a room, closed loop: the ensemble's own output reaches the microphone.

The processor's mix is delayed by a round trip, filtered by a synthetic room and added to a
melody at the input, block by block. With the echo canceller (after its calibration burst)
the analysis follows the melody; without it, the tracker follows the ensemble's echo.
"""

from __future__ import annotations

import numpy as np
import pytest

from demo.melody import render_melody
from tests.reference_config import reference_config
from engine.features.frames import F0, VOICING
from engine.features.streaming import StreamingAnalyzer
from engine.processor import BlockProcessor

SR = 48000
BLOCK = 128
ROUND_TRIP = 480
LEAD_IN_S = 1.2


def room_response(seed: int = 3, gain: float = 0.5) -> np.ndarray:
    """A laptop's near field: the direct path and 10 ms of reflections decaying by 60 dB
    (within the canceller's 512 taps)."""
    rng = np.random.default_rng(seed)
    n = int(0.01 * SR)
    tail = rng.standard_normal(n) * np.exp(-6.91 * np.arange(n) / n) * 0.15
    tail[0] = 1.0
    return gain * tail


def closed_loop(echo_enabled: bool, echo_gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Run melody + room(echo of the mix) through the processor; returns (frames, clean frames)."""
    melody, _ = render_melody(sample_rate_hz=SR)
    melody = np.concatenate([np.zeros(int(LEAD_IN_S * SR), np.float32), melody[: 7 * SR]])
    config = reference_config(sets=[
        f"echo.enabled={str(echo_enabled).lower()}", f"echo.bulk_delay_samples={ROUND_TRIP}",
        f"engine.block_samples={BLOCK}",
    ])
    processor = BlockProcessor(config)
    room = room_response(gain=echo_gain)
    heard = np.random.default_rng(5).standard_normal(len(melody) + len(room) + ROUND_TRIP) * 1e-3  # mic noise
    for start in range(0, len(melody) - BLOCK + 1, BLOCK):
        # the echo arriving during this block comes from mix samples at least ROUND_TRIP old
        block = (melody[start:start + BLOCK] + heard[start:start + BLOCK]).astype(np.float32)
        processor.process(block)
        mono = processor.mix_out[:BLOCK].mean(axis=1)
        arriving = np.convolve(mono, room)
        heard[start + ROUND_TRIP:start + ROUND_TRIP + len(arriving)] += arriving
    n_frames = processor.history.count
    frames = processor.history.window(n_frames, n_frames)
    clean = StreamingAnalyzer(SR).analyze(melody[: n_frames * 192]).values
    return frames, clean


def follow_share(frames: np.ndarray, clean: np.ndarray) -> float:
    """Share of the melody's voiced frames where the analysed f0 is within 50 cents of it."""
    start = int(LEAD_IN_S * 250) + 25
    voiced = clean[start:, VOICING] >= 0.5
    ours = frames[start:, F0][voiced]
    truth = clean[start:, F0][voiced]
    heard_voiced = frames[start:, VOICING][voiced] >= 0.5
    cents = np.abs(1200 * np.log2(np.maximum(ours, 1.0) / truth))
    return float(np.mean((cents < 50) & heard_voiced))


@pytest.mark.parametrize("echo_gain", [3.0, 4.0])
def test_canceller_keeps_the_tracker_on_the_player(echo_gain) -> None:
    with_canceller = follow_share(*closed_loop(True, echo_gain))
    without = follow_share(*closed_loop(False, echo_gain))
    print(f"room gain {echo_gain}: following the player {with_canceller:.3f} with, {without:.3f} without")
    assert with_canceller >= 0.9
    assert without < 0.8
