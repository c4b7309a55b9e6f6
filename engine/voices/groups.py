"""Instrument groups: a processor's reference voices stepped in one compiled call per control
frame, each model's voices in one batched ORT call per frame, and every group's synths rendered
in one compiled call per sub-block (engine/synth/bank.py).

Every alternative voice of every slot that plays a reference timbre through a part
(engine/voices/part_voice.py, engine/voices/reference.py) is a member. Its state (part frame,
the interval rule's memory, per-slot note state and controls, synth state) moves into the
group's stacked arrays and the voice keeps views of it, so a member still steps and renders
alone (a voice in a crossfade does, and tests compare both paths) and the group carries on
from the same state. `activate` says which members play through the group now: the one each
voice slot plays, unless the slot is crossfading or faulted. A member on the leader-interval
rule is filled inside the kernel; one whose part reads the control bus (a plan) is filled in
Python just before it. The output is the same, sample for sample, as each voice's own calls.

Model voices (engine/voices/neural.py) of one decoder file that play now join one shared
`DecoderBatch`, a slot each: the group writes their inputs, one ORT call steps them all and the
controls go to their synths. A voice that stops playing there (swapped out, crossfading,
faulted) takes its GRU memory back to its own batch and steps alone. A batch of B rounds like
B calls of one only to within float32 matmul order (below -100 dB of the signal, tested).
"""

from __future__ import annotations

import numba
import numpy as np

from engine.models.decoder import DecoderBatch
from engine.parts import PART_ACTIVE, PART_F0, LeaderIntervalPart, leader_interval_part
from engine.synth.bank import SynthBank, retarget_synth
from engine.synth.stacking import gather
from engine.voices.base import Voice
from engine.voices.neural import NeuralVoice
from engine.voices.part_voice import PartVoice
from engine.voices.reference import ReferenceInstrument, note_controls


@numba.njit(nogil=True, cache=True)
def _step_group(
    frame: np.ndarray, member_active: np.ndarray, member_rule: np.ndarray, ratios: np.ndarray,
    thresholds: np.ndarray, previous_f0: np.ndarray, parts: np.ndarray, member_row: np.ndarray,
    voice_f0: np.ndarray, pluck_decay_s: np.ndarray, weights: np.ndarray, noise_gain: np.ndarray,
    frame_s: float, slot_member: np.ndarray, slot_note: np.ndarray, slot_state: np.ndarray,
    amplitudes: np.ndarray, noise: np.ndarray, f0: np.ndarray, retarget_state: tuple,
) -> None:
    """One control frame of every active member: its part (the interval rule here, a plan
    filled before), each slot's note controls, each synth's new targets."""
    for m in range(member_active.shape[0]):
        if member_active[m]:
            part = parts[m]
            if member_rule[m]:
                leader_interval_part(frame, ratios[m], thresholds[m], previous_f0[m], part)
            voice_f0[member_row[m]] = part[PART_F0, 0] if part[PART_ACTIVE, 0] != 0.0 else 0.0
    for s in range(slot_member.shape[0]):
        m = slot_member[s]
        if member_active[m]:
            f0[s] = note_controls(parts[m], slot_note[s], frame_s, pluck_decay_s[m], weights[m],
                                  noise_gain[m], slot_state[s], amplitudes[s], noise[s])
            retarget_synth(s, f0[s], amplitudes[s], noise[s], *retarget_state)


@numba.njit(nogil=True, cache=True)
def _apply_batch(
    order: np.ndarray, count: int, f0: np.ndarray, batch_amplitudes: np.ndarray, batch_noise: np.ndarray,
    amplitudes: np.ndarray, noise: np.ndarray, retarget_state: tuple,
) -> None:
    """The stepped batch's controls (float32, slot j) to the synth of member order[j], as
    `NeuralVoice.apply` hands them over (widened to float64 first)."""
    for j in range(count):
        m = order[j]
        for h in range(amplitudes.shape[0]):
            amplitudes[h] = batch_amplitudes[j, h]
        for b in range(noise.shape[0]):
            noise[b] = batch_noise[j, b]
        retarget_synth(m, f0[m], amplitudes, noise, *retarget_state)


def groupable(voice: Voice) -> bool:
    """A voice the reference group can hold: a part played by a reference timbre."""
    return isinstance(voice, PartVoice) and isinstance(voice.instrument, ReferenceInstrument)


class ReferenceGroup:
    """Every reference member, stepped by `_step_group` and rendered by one synth bank."""

    def __init__(self, members: list[tuple[int, PartVoice]], voice_f0: np.ndarray) -> None:
        self.members = [voice for _, voice in members]
        self.rows = [row for row, _ in members]
        self.playing = np.zeros(len(members), dtype=np.int64)
        self._plan_members = [(m, voice) for m, voice in enumerate(self.members)
                              if not isinstance(voice.part, LeaderIntervalPart)]
        voices = self.members
        instruments = [voice.instrument for voice in voices]
        slot_member = [m for m, instrument in enumerate(instruments) for _ in instrument.synths]
        self._slot_member = np.array(slot_member, dtype=np.int64)
        self.bank = SynthBank([synth for instrument in instruments for synth in instrument.synths],
                              [self.rows[m] for m in slot_member])
        stacked, views = gather([instrument.state_arrays() for instrument in instruments], end_to_end=True)
        for instrument, view in zip(instruments, views):
            instrument.adopt_state(view)
        parts, part_views = gather([{"part": voice.part_frame} for voice in voices])
        for voice, view in zip(voices, part_views):
            voice.adopt_part_frame(view["part"])
        rules = [isinstance(voice.part, LeaderIntervalPart) for voice in voices]
        memory, memory_views = gather([voice.part.state_arrays() if rule else {"previous_f0": np.zeros(1)}
                                       for voice, rule in zip(voices, rules)])
        for voice, rule, view in zip(voices, rules, memory_views):
            if rule:
                voice.part.adopt_state(view)
        constants = [instrument.timbre_constants for instrument in instruments]
        frame_s = {c[3] for c in constants}
        if len(frame_s) != 1:
            raise ValueError(f"reference voices differ in their control frame: {sorted(frame_s)} s")
        slot_note = [k for instrument in instruments for k in range(len(instrument.synths))]
        self._arguments = (
            self.playing, np.array(rules, dtype=np.int64),
            np.array([voice.part.rule[0] if rule else 1.0 for voice, rule in zip(voices, rules)]),
            np.array([voice.part.rule[1] if rule else 0.0 for voice, rule in zip(voices, rules)]),
            memory["previous_f0"], parts["part"], np.array(self.rows, dtype=np.int64), voice_f0,
            np.array([c[2] for c in constants]), np.stack([c[0] for c in constants]),
            np.array([c[1] for c in constants]), frame_s.pop(), self._slot_member,
            np.array(slot_note, dtype=np.int64), stacked["state"], stacked["amplitudes"],
            stacked["noise"], stacked["f0"], self.bank.retarget_state,
        )

    def activate(self, voices: list[Voice], faulted: np.ndarray) -> None:
        for m, voice in enumerate(self.members):
            row = self.rows[m]
            self.playing[m] = voices[row] is voice and not faulted[row]
        np.take(self.playing, self._slot_member, out=self.bank.active)

    def step(self, frame: np.ndarray, frame_index: int) -> None:
        for m, voice in self._plan_members:
            if self.playing[m]:
                voice.part.fill(frame, frame_index, voice.part_frame)
        _step_group(frame, *self._arguments)

    def finish_step(self) -> None:
        """Nothing left: `step` retargeted every synth (the interface model groups need)."""


class ModelGroup:
    """The model voices of one decoder file: those it plays step in one shared batch and
    render through one synth bank.

    A batch is bound for every count of playing voices (1..members, ORT I/O binding over
    preallocated arrays, one session), so each frame's ORT call holds only the voices that play.
    The others (another kind's alternative, a voice in a crossfade) are back on their own
    batch of one and step alone when they are stepped.
    """

    def __init__(self, members: list[tuple[int, NeuralVoice]], voice_f0: np.ndarray) -> None:
        self.members = [voice for _, voice in members]
        self.rows = [row for row, _ in members]
        self.playing = np.zeros(len(members), dtype=np.int64)
        self._voice_f0 = voice_f0
        first = self.members[0].batch
        self._batches = [DecoderBatch(first.info, count, session=first.session)
                         for count in range(1, len(members) + 1)]
        self._order = np.zeros(len(members), dtype=np.int64)  # the members in the batch, by slot
        self._count = 0
        self._f0 = np.zeros(len(members))  # what each member plays this frame (Hz, 0 = silent)
        self._amplitudes = np.zeros(first.info.n_harmonics)
        self._noise = np.zeros(first.info.n_noise_bands)
        self.bank = SynthBank([voice.synths[0] for voice in self.members], self.rows)

    def activate(self, voices: list[Voice], faulted: np.ndarray) -> None:
        for j in range(self._count):
            self.members[self._order[j]].leave()
        count = 0
        for m, voice in enumerate(self.members):
            row = self.rows[m]
            self.playing[m] = voices[row] is voice and not faulted[row]
            if self.playing[m]:
                self._order[count] = m
                count += 1
        self._count = count
        for j in range(count):
            self.members[self._order[j]].join(self._batches[count - 1], j)
        np.copyto(self.bank.active, self.playing)

    def step(self, frame: np.ndarray, frame_index: int) -> None:
        """Write the inputs of the voices the group plays."""
        for j in range(self._count):
            m = self._order[j]
            voice = self.members[m]
            voice.prepare(frame)
            self._f0[m] = self._voice_f0[self.rows[m]] = voice.sounding_f0_hz

    def finish_step(self) -> None:
        """One ORT call for the voices it plays, then one kernel hands every one's controls
        to its synth."""
        if self._count:
            batch = self._batches[self._count - 1]
            batch.step()
            _apply_batch(self._order, self._count, self._f0, batch.harmonic_amplitudes, batch.noise_magnitudes,
                         self._amplitudes, self._noise, self.bank.retarget_state)


class VoiceGroups:
    """The instrument groups of a processor's voice alternatives (none with `batched=False`).

    `grouped[v]` is 1 while slot v's voice steps and renders through a group; the processor
    steps and renders the other slots' voices one by one, between `step` and `finish_step`.
    """

    def __init__(self, alternatives: list[dict[int, Voice]], voice_out: np.ndarray, voice_f0: np.ndarray,
                 batched: bool = True) -> None:
        members = [(v, voice) for v, slot in enumerate(alternatives) for voice in slot.values()] if batched else []
        self.grouped = np.zeros(len(alternatives), dtype=np.int64)
        self._voice_out = voice_out
        self.groups: list[ReferenceGroup | ModelGroup] = []
        reference = [(v, voice) for v, voice in members if groupable(voice)]
        if reference:
            self.groups.append(ReferenceGroup(reference, voice_f0))
        by_model: dict[str, list[tuple[int, NeuralVoice]]] = {}
        for v, voice in members:
            if isinstance(voice, NeuralVoice):
                by_model.setdefault(str(voice.batch.info.onnx_path), []).append((v, voice))
        self.groups.extend(ModelGroup(model_members, voice_f0) for model_members in by_model.values())

    def activate(self, voices: list[Voice], faulted: np.ndarray) -> None:
        """Members play through their group where they are what their slot plays now (not a
        crossfade, not faulted). Audio thread, on a swap, a finished fade, a fault or a reset."""
        self.grouped[:] = 0
        for group in self.groups:
            group.activate(voices, faulted)
            for m, row in enumerate(group.rows):
                if group.playing[m]:
                    self.grouped[row] = 1

    def step(self, frame: np.ndarray, frame_index: int) -> None:
        """The first half of a control frame: reference voices stepped, model inputs written."""
        for group in self.groups:
            group.step(frame, frame_index)

    def finish_step(self) -> None:
        """The second half, after voices stepped alone wrote theirs: the model batches."""
        for group in self.groups:
            group.finish_step()

    def render(self, offset: int, count: int) -> None:
        """Every playing member's synths add count samples into their voice rows."""
        for group in self.groups:
            group.bank.render(self._voice_out, offset, count)
