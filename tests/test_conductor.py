"""The conductor: input steps live == offline, targets in acoustic time, causality, ONNX parity,
the sidecar contract, plans that sustain notes, and the task in perform."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.conductor.contract import (
    BIN_FRAMES, CONTEXT_STEPS, FRAME_S, HISTORY_FRAMES, HORIZON_BINS, HORIZON_FRAMES, LOOKAHEAD_FRAMES,
    NOMINAL_DEVICE_LATENCY_S, OUTPUT_WIDTH, ROLES, STEP_FRAMES, n_note_classes, output_slices, scale_loudness,
)
from engine.conductor.inputs import N_INPUTS, StepInputs, song_inputs
from engine.conductor.plans import HarmonyPlanner, LinePlanner
from engine.conductor.task import ConductorTask
from engine.errors import TuttiError
from engine.models.conductor import ConductorRunner, load_conductor_info
from engine.parts import PART_ACTIVE, PART_F0, PART_LOUDNESS, PART_ONSET
from engine.scheduling import FrameHistory, FrameScheduler
from tests.conductor_fixtures import edit_sidecar, export_tiny_conductor, melody_frames, tiny_conductor
from training.conductor.targets import Part, note_class, role_tracks, step_targets
from training.data.items import NOTE_DTYPE

SLICES = output_slices()


def test_live_step_rows_equal_the_offline_rows_of_the_whole_take() -> None:
    frames = melody_frames(14.0)
    offline = song_inputs(frames)
    history = FrameHistory()
    live = StepInputs()
    worst = 0.0
    for count in range(1, len(frames) + 1):
        history.append(frames[count - 1])
        if count % STEP_FRAMES == 0 and count % 70 == 0:  # every 0.28 s: the cache skips some steps
            context = live.at(history.window(count, HISTORY_FRAMES), count)
            k = count // STEP_FRAMES
            expected = np.zeros((CONTEXT_STEPS, N_INPUTS))
            rows = offline[max(0, k - CONTEXT_STEPS) : k]
            expected[CONTEXT_STEPS - len(rows):] = rows
            worst = max(worst, float(np.abs(context - expected).max()))
    assert worst < 1e-6  # float32 context against float64 rows
    beat = offline[600:, 30:32]
    assert np.all(np.abs(np.hypot(beat[:, 0], beat[:, 1]) - 1.0) < 1e-9)  # a tempo was found: unit phase vector
    assert abs(2 ** offline[-1, 28] * 110.0 - 120.0) < 3.0  # 120 BPM


def _notes(rows) -> np.ndarray:
    return np.array(rows, dtype=NOTE_DTYPE)


def test_targets_are_what_the_true_parts_play_when_the_plan_is_heard() -> None:
    n_frames = 1000
    loud = np.full(n_frames, -30.0)
    parts = [
        Part("melody", _notes([(0.0, 4.0, 72, 80)]), loud),
        Part("bass", _notes([(0.0, 1.0, 36, 80), (1.0, 4.0, 43, 80)]), loud - 6.0),
        Part("counter", _notes([(0.0, 4.0, 64, 80)]), loud),
        Part("counter", _notes([(0.0, 4.0, 55, 80)]), np.full(n_frames, -100.0)),
    ]
    tracks = role_tracks(parts, n_frames)
    times = (np.arange(n_frames) + 1) * FRAME_S + NOMINAL_DEVICE_LATENCY_S
    assert tracks.pitch["bass"][times < 1.0].tolist() == [36] * int((times < 1.0).sum())
    assert set(tracks.pitch["bass"][(times >= 1.0) & (times < 4.0)]) == {43}
    assert set(tracks.pitch["counter"][times < 4.0]) == {64}  # the highest inner part
    assert tracks.chord[10].nonzero()[0].tolist() == [0, 4, 7]  # bass C, inner E and G; the leader's C not needed
    targets = step_targets(tracks, 90)
    # the step whose first bin holds the bass's change at 1.0 s: frames t + L ... t + L + 9
    k = next(k for k in range(90) if (k + 1) * STEP_FRAMES + LOOKAHEAD_FRAMES <= 249 - 1 < (k + 1) * STEP_FRAMES + LOOKAHEAD_FRAMES + BIN_FRAMES)
    assert targets["bass_onset"][k, 0] == 1.0 and targets["bass_onset"][k - 1, 0] == 0.0
    assert note_class("bass", np.array([43]))[0] == targets["bass_note"][k + 2, 0] == 43 - 28
    assert targets["bass_note"][0, 0] == 36 - 28
    assert abs(targets["bass_loudness"][5, 0] - scale_loudness(-36.0)) < 1e-6
    assert note_class("bass", np.array([-1, 20, 80])).tolist() == [n_note_classes("bass") - 1, 32 - 28, 56 - 28]


def test_the_model_is_causal_and_its_onnx_export_matches_torch(tmp_path) -> None:
    model = tiny_conductor()
    a = torch.randn(2, CONTEXT_STEPS, N_INPUTS)
    b = a.clone()
    b[:, 40:] += torch.randn(2, CONTEXT_STEPS - 40, N_INPUTS)
    with torch.no_grad():
        assert (model(a)[:, :40] - model(b)[:, :40]).abs().max() == 0.0
        assert (model(a)[:, 40:] - model(b)[:, 40:]).abs().max() > 1e-3
    path, model = export_tiny_conductor(tmp_path)
    runner = ConductorRunner(load_conductor_info(path))
    x = np.random.default_rng(1).standard_normal((CONTEXT_STEPS, N_INPUTS)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)[None])[0, -1].numpy()
    out = runner.run(x)
    assert out.shape == (HORIZON_BINS, OUTPUT_WIDTH) and np.abs(out - expected).max() < 1e-4


@pytest.mark.parametrize(("change", "named"), [
    ({"roles": ["bass", "harmony"]}, "roles"),
    ({"input_fields": [["pitch", 1]]}, "input_fields"),
    ({"context_steps": 128}, "context_steps"),
    ({"feature_version": 99}, "feature version 99"),
    ({"kind": "tutti-ddsp-decoder"}, "not 'tutti-conductor'"),
])
def test_a_model_trained_for_another_contract_is_refused_by_name(tmp_path, change, named) -> None:
    path, _ = export_tiny_conductor(tmp_path)
    edit_sidecar(path, **change)
    with pytest.raises(TuttiError, match=named):
        load_conductor_info(path)


def _bins(note: int | None, onset: float, loudness_db: float, *, role: str = "bass", second: int | None = None,
          share: float = 0.0) -> np.ndarray:
    bins = np.zeros((HORIZON_BINS, OUTPUT_WIDTH))
    logits = np.full(n_note_classes(role), -10.0)
    logits[-1 if note is None else note - 28] = 5.0
    if second is not None:
        logits[second - 28] = 5.0 + np.log(share)
    bins[:, SLICES[f"{role}_note"]] = logits
    bins[:, SLICES[f"{role}_onset"]] = np.log(onset / (1 - onset))
    bins[:, SLICES[f"{role}_loudness"]] = scale_loudness(loudness_db)
    return bins


def test_a_line_sustains_its_note_and_does_not_flicker_between_neighbours() -> None:
    planner = LinePlanner("bass")
    plan = np.zeros((HORIZON_FRAMES, 4, 4))
    plan_frames = []
    for call in range(30):  # 1.2 s of calls; the model wavers between G and a slightly less likely A
        bins = _bins(43, 0.9 if call == 0 else 0.1, -20.0, second=45, share=0.8 if call % 2 else 0.6)
        planner.plan(bins, plan, silent=False)
        plan_frames.append(plan[:BIN_FRAMES].copy())  # what sounds before the next plan takes over
    played = np.concatenate(plan_frames)
    sounding = played[:, PART_ACTIVE, 0] > 0
    assert sounding[BIN_FRAMES:].all()
    assert set(np.round(played[sounding, PART_F0, 0], 3)) == {round(440 * 2 ** ((43 - 69) / 12), 3)}
    assert played[:, PART_ONSET, 0].sum() == 1.0  # one note, started once
    assert np.abs(played[-50:, PART_LOUDNESS, 0] + 20.0).max() < 0.01
    for _ in range(3):  # now the model is sure of A: the note changes, once
        planner.plan(_bins(45, 0.9, -20.0), plan, silent=False)
    assert round(plan[0, PART_F0, 0], 2) == round(440 * 2 ** ((45 - 69) / 12), 2)
    planner.plan(_bins(45, 0.9, -20.0), plan, silent=True)
    assert plan[BIN_FRAMES // 2 :, PART_ACTIVE].sum() == 0.0  # a silent leader: rest from the next bin middle


def test_harmony_voices_its_pitch_classes_around_the_register() -> None:
    bins = np.zeros((HORIZON_BINS, OUTPUT_WIDTH))
    pcs = np.full(12, -5.0)
    pcs[[2, 5, 9]] = 5.0  # D minor
    bins[:, SLICES["harmony_pitch_classes"]] = pcs
    bins[:, SLICES["harmony_register"]] = (64.0 - 60.0) / 12.0
    bins[:, SLICES["harmony_onset"]] = 3.0
    bins[:, SLICES["harmony_loudness"]] = scale_loudness(-24.0)
    plan = np.zeros((HORIZON_FRAMES, 4, 4))
    HarmonyPlanner().plan(bins, plan, silent=False)
    midi = np.round(69 + 12 * np.log2(plan[BIN_FRAMES, PART_F0, :3] / 440.0)).astype(int)
    assert sorted(midi.tolist()) == [62, 65, 69] and plan[BIN_FRAMES, PART_ACTIVE, 3] == 0.0


def test_the_task_plans_from_frames_and_a_long_silence_rests_every_role(tmp_path) -> None:
    path, _ = export_tiny_conductor(tmp_path)
    frames = melody_frames(12.0, silent_from_s=6.0)
    results = []
    for _ in range(2):
        task = ConductorTask(path)
        history = FrameHistory()
        scheduler = FrameScheduler([task], history)
        taken = []
        for count in range(1, len(frames) + 1):
            history.append(frames[count - 1])
            scheduler.on_frame(count)
            current = scheduler.bus.current(0)
            if current is not None and count % 10 == 5:
                taken.append(current[0].copy())
        results.append(np.array(taken))
    assert np.array_equal(results[0], results[1])  # a pure function of the frames: offline == live
    plans = results[0].reshape(len(results[0]), len(ROLES), HORIZON_FRAMES, 4, 4)
    assert np.isfinite(plans).all()
    late = plans[int(9.0 * 25):]  # 3 s after the leader stopped (over 2 s of silence)
    assert late[:, :, :, PART_ACTIVE].sum() == 0.0
    assert plans[:, :, :, PART_LOUDNESS].max() <= -6.0


def test_transposition_moves_pitches_and_leaves_time_and_loudness() -> None:
    from engine.conductor.inputs import input_slices
    from training.conductor.augment import transpose

    frames = melody_frames(6.0)
    inputs = song_inputs(frames)[:CONTEXT_STEPS].astype(np.float32)
    parts = [Part("melody", _notes([(0.0, 6.0, 72, 80)]), np.full(1500, -30.0)),
             Part("bass", _notes([(0.0, 6.0, 65, 80)]), np.full(1500, -30.0)),  # F3: near the top of the bass range
             Part("counter", _notes([(0.0, 6.0, 69, 80)]), np.full(1500, -30.0))]
    targets = {k: v[:CONTEXT_STEPS] for k, v in step_targets(role_tracks(parts, 1600), 150).items()}
    shifted_inputs, shifted = inputs.copy(), {k: v.copy() for k, v in targets.items()}
    transpose(shifted_inputs, shifted, 4)
    s = input_slices()
    voiced = inputs[:, s["voiced"]][:, 0] > 0
    assert np.allclose(shifted_inputs[voiced, 0] - inputs[voiced, 0], 4 / 12)
    assert np.array_equal(np.argmax(shifted_inputs[voiced, s["pitch_class"]], 1), (np.argmax(inputs[voiced, s["pitch_class"]], 1) + 4) % 12)
    for name in ("loudness", "onset", "tempo", "beat_phase"):
        assert np.array_equal(shifted_inputs[:, s[name]], inputs[:, s[name]])
    assert set(shifted["bass_note"].ravel()) == {65 + 4 - 12 - 28}  # A3 leaves the range: an octave down
    assert set(shifted["counter_note"].ravel()) == {69 + 4 - 43}
    assert shifted["harmony_pitch_classes"][0, 0].nonzero()[0].tolist() == [1, 9]  # F, A -> A, C#
    assert np.array_equal(shifted["bass_loudness"], targets["bass_loudness"])


def test_notes_start_on_the_beat_grid_of_a_confident_tempo() -> None:
    from engine.conductor.plans import GRID_LEAD_FRAMES, START_OFFSET, grid_starts

    trigger = 1000
    offset = trigger - 1 - GRID_LEAD_FRAMES - (1018 - 62.5)  # a half-beat grid point at plan frame 1018
    estimate = np.array([120.0, 0.9, 0.0, 0.0, 0.5, 125.0, offset])
    starts = grid_starts(estimate, trigger)
    assert starts.tolist() == [START_OFFSET, 1018 - (trigger + LOOKAHEAD_FRAMES + BIN_FRAMES), START_OFFSET, START_OFFSET]
    estimate[1] = 0.1
    assert grid_starts(estimate, trigger) is None  # no confident tempo: bin middles
    planner = LinePlanner("bass")
    plan = np.zeros((HORIZON_FRAMES, 4, 4))
    bins = _bins(43, 0.1, -20.0)
    bins[0] = _bins(None, 0.1, -20.0)[0]  # a rest, then a note predicted to start in the second bin
    bins[1, SLICES["bass_onset"]] = 3.0
    planner.plan(bins, plan, silent=False, starts_at=np.array([5, 3, 5, 5]))
    assert np.nonzero(plan[:, PART_ONSET, 0])[0].tolist() == [BIN_FRAMES + 3]


def test_a_model_voice_plays_the_conductors_bass_where_the_plan_sounds(tmp_path) -> None:
    import dataclasses

    from demo.melody import DEMO_PATH
    from engine.audio_io import read_mono
    from engine.config import VoiceConfig, load_config
    from engine.processor import BlockProcessor
    from tests.voice_models import export_tiny

    decoder = export_tiny(tmp_path)
    conductor, _ = export_tiny_conductor(tmp_path)
    base = load_config(sets=["synth.reverb=false", "midi.virtual_port=false"])
    config = dataclasses.replace(base, voices=(("bass", VoiceConfig(kind=f"model:{decoder}/bass", role="bass")),),
                                 conductor=dataclasses.replace(base.conductor, model=str(conductor), midi_out=False))
    processor = BlockProcessor(config)
    audio = read_mono(DEMO_PATH, 48000)[: 6 * 48000]
    processor.log_parts(len(audio) // 192)
    voices, _ = processor.render(audio, 128)
    active = processor.part_log[:, 0, PART_ACTIVE, 0] > 0
    energy = np.sqrt(np.mean(voices[0, : len(active) * 192].reshape(-1, 192) ** 2, axis=1))
    assert active.sum() > 100 and (~active).sum() > 20  # the plan sounds, and rests
    playing = energy[1:][active[:-1] & active[1:]]  # one frame for the synth's ramp
    silent = energy[1:][~active[:-1] & ~active[1:]]
    assert np.median(playing) > 10 * max(np.median(silent), 1e-6)


def test_the_followers_level_moves_with_the_players(tmp_path) -> None:
    path, _ = export_tiny_conductor(tmp_path)  # trained leaders at -30 dB
    task = ConductorTask(path)
    context = np.zeros((CONTEXT_STEPS, N_INPUTS), dtype=np.float32)
    context[-20:, 1] = 1.0
    context[-20:, 14] = scale_loudness(-18.0)
    assert abs(task._level_offset(context) - 2.0) < 1e-5  # 12 dB louder than the training leaders: 2 beyond their range
    context[-20:, 14] = scale_loudness(-36.0)
    assert task._level_offset(context) == 0.0  # within the training leaders' range: as trained
    context[-20:, 14] = scale_loudness(-95.0)
    assert task._level_offset(context) == -30.0  # bounded
    assert task._level_offset(np.zeros_like(context)) == 0.0  # nobody playing: no shift
    bins = _bins(43, 0.9, -20.0)
    plans = [np.zeros((HORIZON_FRAMES, 4, 4)) for _ in range(2)]
    for plan, offset in zip(plans, (0.0, 12.0)):
        LinePlanner("bass").plan(bins, plan, silent=False, offset_db=offset)
    sounding = plans[0][:, PART_ACTIVE, 0] > 0
    assert np.allclose(plans[1][sounding, PART_LOUDNESS, 0] - plans[0][sounding, PART_LOUDNESS, 0], 12.0)
