"""The tempo/key task on analysis frames of known music, and its deadline scheduling."""

from __future__ import annotations

import numpy as np

from demo.melody import render_melody
from engine.features.streaming import StreamingAnalyzer
from engine.scheduling import FrameHistory, FrameScheduler
from engine.tempo_key import TempoKeyTask, estimate_key, estimate_tempo


def test_tempo_of_a_click_track() -> None:
    onset = np.zeros(2000)
    onset[::125] = 1.0  # a click every 0.5 s at 250 frames/s = 120 BPM
    bpm, confidence = estimate_tempo(onset)
    assert abs(bpm - 120) <= 1 and confidence > 0.8


def test_key_of_the_demo_melody_is_d_major() -> None:
    audio, _ = render_melody(sample_rate_hz=48000)
    frames = StreamingAnalyzer(48000).analyze(audio).values
    weights = np.where(frames[:, 1] >= 0.5, 10 ** (frames[:, 2] / 20), 0.0)
    tonic, mode, confidence = estimate_key(frames[:, 4:16], weights)
    assert (tonic, mode) == (2, "major") and confidence > 0.6


def test_results_apply_exactly_at_trigger_plus_lookahead() -> None:
    task = TempoKeyTask()
    history = FrameHistory()
    scheduler = FrameScheduler([task], history, synchronous=True)
    applied_at = []
    original_apply = task.apply

    def recording_apply(result):
        applied_at.append(history.count)
        original_apply(result)

    task.apply = recording_apply
    for _ in range(600):
        history.append(np.zeros(16))
        scheduler.on_frame(history.count)
    assert applied_at == [175, 300, 425, 550]
    assert scheduler.deadline_misses == 0


def test_a_late_worker_is_a_counted_miss_and_the_old_result_stays() -> None:
    task = TempoKeyTask()
    history = FrameHistory()
    scheduler = FrameScheduler([task], history, synchronous=False)
    slot = scheduler.slots[0]
    for _ in range(300):
        history.append(np.zeros(16))
        scheduler.on_frame(history.count)
        if history.count == 125:  # the worker answers the first trigger in time, then never again
            scheduler.run(slot, slot.requested_trigger)
    assert slot.applied == 1 and scheduler.deadline_misses == 1
    assert task.current is not None
