"""Instrument groups (engine/voices/groups.py): every reference voice stepped in one compiled
call per frame and rendered in one per sub-block gives the same audio, sample for sample, as
calling each voice alone, through swaps, faults, task plans, chords and any block size; and the
processor's compiled calls per block no longer grow with the number of voices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from demo.melody import render_melody
from engine.processor import SWAP_ROW, BlockProcessor
from tests.reference_config import reference_config

SR = 48000
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def melody() -> np.ndarray:
    audio, _ = render_melody(sample_rate_hz=SR)
    return audio[: 3 * SR]


def _both(config, audio, block, automation=None):
    outputs = []
    for batched in (True, False):
        processor = BlockProcessor(config, batched=batched)
        outputs.append(processor.render(audio, block, automation=automation))
        if batched:
            assert processor.groups.grouped.sum() > 0  # the group really played
    return outputs


def _assert_same(outputs) -> None:
    (voices_a, mix_a), (voices_b, mix_b) = outputs
    assert np.max(np.abs(voices_a)) > 1e-3
    assert np.array_equal(voices_a, voices_b)
    assert np.array_equal(mix_a, mix_b)


@pytest.mark.parametrize("block", [37, 128, 1024])
def test_grouped_voices_equal_voices_called_alone(melody, block) -> None:
    _assert_same(_both(reference_config(), melody, block))


def test_swaps_back_and_forth_give_the_same_audio_grouped_or_alone(melody) -> None:
    """A swap crossfades two members of the group alone for 50 ms, then the new one joins the
    group; swapping back returns the first, whose state carried on."""
    config = reference_config(sets=['voices.strings.kind="reference:organ"', 'voices.organ.kind="reference:bowed-strings"'])
    kinds = BlockProcessor(config).kinds
    organ = config.voice_names.index("organ")
    automation = np.array([
        [0.8 * SR, SWAP_ROW, organ, kinds.index("reference:plucked-bass")],
        [0.82 * SR, SWAP_ROW, 0, kinds.index("reference:organ")],  # a second slot, mid-fade of the first
        [1.6 * SR, SWAP_ROW, organ, kinds.index("reference:bowed-strings")],
    ])
    _assert_same(_both(config, melody, 128, automation))


def test_faults_task_plans_and_chords_give_the_same_audio_grouped_or_alone(melody) -> None:
    """A raising voice (alone, then silenced), a voice on a task's plan (filled in Python before
    the group's kernel) and a four-note harmony role from the conductor (four slots)."""
    config = reference_config(sets=[
        'voices.bass.kind="test:raise-after-frames:200"',
        'voices.organ.kind="test:plays-task-plan"',
        'voices.strings.role="harmony"',
    ])
    outputs = _both(config, melody, 128)
    _assert_same(outputs)
    bass = config.voice_names.index("bass")
    assert np.max(np.abs(outputs[0][0][bass, int(1.0 * SR):])) == 0.0  # the raising voice fell silent


def test_compiled_calls_per_block_do_not_grow_with_the_voices() -> None:
    """bench/calls.py counts every Python-to-kernel call: at most 5 in a block that holds a
    frame edge plus one per instrument group (one group here: 6), 2 plus one without one (3):
    the analysis (one per piece of the block), the groups' renders and steps, the mix."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "calls.py"), "--voices", "3", "12"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)
    rows = [line.split("|")[1:5] for line in result.stdout.splitlines() if line.startswith("| ") and "voices" not in line]
    counts = {int(voices): (float(edge), float(without)) for voices, _, edge, without in rows}
    assert set(counts) == {3, 12}
    for edge, without in counts.values():
        assert edge <= 5 + 1
        assert without <= 2 + 1


MODEL_VOICES = ['voices.bass.kind="model:ensemble/bass"', 'voices.organ.kind="model:ensemble/keys"',
                'voices.strings.kind="model:ensemble/strings"']


def test_model_voices_step_in_one_batch_and_sound_as_when_stepped_alone(melody) -> None:
    """One ORT call per frame for all three voices (and the slot a swap moves to), against one
    call per voice: the same audio to within float32 rounding of a batched matmul (-100 dB),
    through a swap between two model kinds and back."""
    config = reference_config(sets=[*MODEL_VOICES, 'synth.reverb=false'])
    processor = BlockProcessor(config)
    assert [len(group.members) for group in processor.groups.groups] == [9]  # 3 slots x 3 kinds
    assert processor.groups.groups[0]._count == 3  # only the three playing step in its batch
    kinds = processor.kinds
    organ = config.voice_names.index("organ")
    automation = np.array([
        [0.9 * SR, SWAP_ROW, organ, kinds.index("model:ensemble/strings")],
        [1.9 * SR, SWAP_ROW, organ, kinds.index("model:ensemble/keys")],
    ])
    (grouped, _), (alone, _) = _both(config, melody, 128, automation)
    for row_grouped, row_alone in zip(grouped, alone):
        level = np.sqrt(np.mean(row_alone.astype(np.float64) ** 2))
        assert level > 1e-3
        error = np.sqrt(np.mean((row_grouped.astype(np.float64) - row_alone) ** 2))
        assert error <= 1e-5 * level  # -100 dB
