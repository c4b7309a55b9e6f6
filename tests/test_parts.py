"""Parts (what a follower plays) apart from instruments (how it sounds): the leader-interval
rule, plans on the control bus, and one instrument playing a chord in several slots."""

from __future__ import annotations

import numpy as np

from engine.config import load_config
from engine.features.frames import F0, LOUDNESS, VOICING
from engine.parts import (
    MAX_NOTES,
    PART_ACTIVE,
    PART_F0,
    PART_LOUDNESS,
    PART_ROWS,
    LeaderIntervalPart,
    PlanPart,
    new_part_frame,
    plan_size,
)
from engine.scheduling import ControlBus
from engine.voices.factory import reference_instrument

SR = 48000


def _frame(f0: float, voicing: float, loudness: float = -20.0) -> np.ndarray:
    frame = np.zeros(16)
    frame[F0], frame[VOICING], frame[LOUDNESS] = f0, voicing, loudness
    return frame


def test_the_leader_interval_part_plays_one_note_while_the_leader_is_voiced() -> None:
    part, frame = LeaderIntervalPart(-12, 0.5), new_part_frame()
    part.fill(_frame(440.0, 0.9), 0, frame)
    assert frame[PART_F0, 0] == 220.0 and frame[PART_ACTIVE].tolist() == [1, 0, 0, 0]
    assert frame[PART_LOUDNESS, 0] == -20.0
    part.fill(_frame(0.0, 0.0), 1, frame)
    assert not frame[PART_ACTIVE].any()
    part.fill(_frame(330.0, 0.2), 2, frame)  # weakly voiced and not steady yet: silent
    assert not frame[PART_ACTIVE].any()
    part.fill(_frame(331.0, 0.2), 3, frame)  # steady within 25 cents: early entry
    assert frame[PART_ACTIVE, 0] == 1.0


class _PlanTask:
    name, period_frames, lookahead_frames, history_frames = "plan", 10, 5, 10
    result_size = plan_size(10)


def test_a_plan_part_plays_row_n_minus_trigger_plus_lookahead_and_is_silent_outside() -> None:
    task = _PlanTask()
    bus = ControlBus([task])
    part = PlanPart("plan", 10)
    part.attach(bus, [task])
    frame = new_part_frame()
    part.fill(_frame(0, 0), 3, frame)
    assert not frame[PART_ACTIVE].any()  # no plan yet
    plan = np.zeros((10, PART_ROWS, MAX_NOTES))
    plan[:, PART_F0, 0] = 100.0 + np.arange(10)
    plan[:, PART_ACTIVE, 0] = 1.0
    bus.rows[0, 0, : plan.size] = plan.ravel()
    bus.stamps[0, 0] = 20
    bus.commit_due(0, 20)  # computed at frame 20: covers frames 25..34
    for n in (25, 29, 34):
        part.fill(_frame(0, 0), n, frame)
        assert frame[PART_F0, 0] == 100.0 + n - 25 and frame[PART_ACTIVE, 0] == 1.0
    for n in (24, 35):
        part.fill(_frame(0, 0), n, frame)
        assert not frame[PART_ACTIVE].any()


def test_one_instrument_plays_a_chord_in_three_slots() -> None:
    config = load_config(sets=["synth.reverb=false"])
    instrument = reference_instrument("pad", "reference:organ", config, slots=3)
    chord = new_part_frame()
    chord[PART_F0, :3] = (220.0, 277.18, 329.63)  # A major
    chord[PART_LOUDNESS, :3] = -20.0
    chord[PART_ACTIVE, :3] = 1.0
    out = np.zeros(SR, dtype=np.float32)
    for start in range(0, SR, 192):
        instrument.step(chord)
        instrument.render(out, start, 192)
    spectrum = np.abs(np.fft.rfft(out[SR // 2:] * np.hanning(SR // 2)))
    freqs = np.fft.rfftfreq(SR // 2, 1 / SR)
    peaks = sorted(freqs[np.argsort(spectrum)[-40:]])
    for f0 in (220.0, 277.18, 329.63):
        assert min(abs(p - f0) for p in peaks) < 3.0, (f0, peaks[:12])
    single = new_part_frame()
    single[:, 0] = chord[:, 0]
    quiet = np.zeros(SR, dtype=np.float32)
    instrument.reset()
    for start in range(0, SR, 192):
        instrument.step(single)
        instrument.render(quiet, start, 192)
    ratio_db = 10 * np.log10(np.mean(out[SR // 2:] ** 2) / np.mean(quiet[SR // 2:] ** 2))
    assert 3.5 < ratio_db < 6.5  # three uncorrelated notes: about 4.8 dB above one
