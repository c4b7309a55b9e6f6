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


def test_beat_phase_of_a_click_track() -> None:
    onset = np.zeros(2000)
    onset[37::125] = 1.0  # a click every 0.5 s, the last one at frame 1912 (87 before the end)
    frames = np.zeros((2000, 16))
    frames[:, 3] = onset
    out = np.zeros(TempoKeyTask.result_size)
    TempoKeyTask().compute(frames, out)
    estimate = TempoKeyTask.decode(out, trigger=10_000)  # the window ends at frame 9999
    assert abs(estimate.tempo_bpm - 120) <= 1
    assert estimate.beat_frame == 9999 - 87
    assert estimate.beat_phase(9999 - 87 + 125) == 0.0 and abs(estimate.beat_phase(9999 - 87 + 62) - 0.496) < 0.01


def _run(scheduler: FrameScheduler, history: FrameHistory, n_frames: int, on_frame=None) -> list[int]:
    """Append n_frames (frame n holds n in its onset column); returns the frames at which the
    result in force changed."""
    changes, previous = [], None
    for _ in range(n_frames):
        frame = np.zeros(16)
        frame[3] = history.count
        history.append(frame)
        scheduler.on_frame(history.count)
        if on_frame is not None:
            on_frame(history.count)
        current = scheduler.bus.current(0)
        stamp = None if current is None else current[1]
        if stamp != previous:
            changes.append(history.count)
            previous = stamp
    return changes


def test_results_come_into_force_exactly_at_trigger_plus_lookahead() -> None:
    history = FrameHistory()
    scheduler = FrameScheduler([TempoKeyTask()], history, synchronous=True)
    assert _run(scheduler, history, 600) == [175, 300, 425, 550]
    assert scheduler.deadline_misses == 0
    result, trigger = scheduler.bus.current(0)
    assert trigger == 500 and result.shape == (TempoKeyTask.result_size,)


def test_a_late_worker_is_a_counted_miss_and_the_old_result_stays() -> None:
    history = FrameHistory()
    scheduler = FrameScheduler([TempoKeyTask()], history, synchronous=False)

    def worker(count: int) -> None:  # answers the first trigger in time, then never again
        if count == 125:
            assert scheduler.run(0, int(scheduler.bus.state[0, 1]))

    assert _run(scheduler, history, 300, worker) == [175]
    assert scheduler.bus.state[0, 2] == 1 and scheduler.deadline_misses == 1
    assert scheduler.bus.current(0)[1] == 125


def test_a_worker_reading_frames_already_overwritten_counts_a_stale_read() -> None:
    history = FrameHistory(capacity=2048)
    scheduler = FrameScheduler([TempoKeyTask()], history, synchronous=False)
    _run(scheduler, history, 125)
    _run(scheduler, history, 2048)  # the worker slept through a whole history
    assert not scheduler.run(0, 125)
    assert scheduler.bus.worker[0, 0] == 1 and scheduler.bus.current(0) is None
