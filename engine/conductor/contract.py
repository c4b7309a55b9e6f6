"""The conductor's contract: rates, roles, input features and output fields (DESIGN.md section 6).

The conductor runs every PERIOD_FRAMES analysis frames (40 ms). It reads CONTEXT_STEPS input
steps of STEP_FRAMES frames each (2.56 s) and predicts, for each role, HORIZON_BINS bins of
BIN_FRAMES frames; bin h covers plan frames [t + L + h*BIN_FRAMES, ... + BIN_FRAMES) for a
trigger t and lookahead L. Each bin's target is what the true part plays when that plan frame
is heard: (frame + 1) * 4 ms + the nominal device latency after the leader's sound.
"""

from __future__ import annotations

from engine.rates import CONTROL_RATE_HZ

FORMAT_VERSION = 1
MODEL_KIND = "tutti-conductor"
ROLES = ("bass", "counter", "harmony", "drums")
STEP_FRAMES = 10                 # one input step: 40 ms, 25 steps a second
CONTEXT_STEPS = 64               # 2.56 s of leader history per call
PERIOD_FRAMES = 10               # the task runs every 40 ms
LOOKAHEAD_FRAMES = 5             # its plan is in force 20 ms after its trigger
BIN_FRAMES = 10                  # one predicted bin: 40 ms
HORIZON_BINS = 4                 # 160 ms planned: the next call plus three missed ones
HORIZON_FRAMES = BIN_FRAMES * HORIZON_BINS
NOMINAL_DEVICE_LATENCY_S = 0.0053  # input + output at 128 samples on the JACK dummy (DESIGN.md 11)
TEMPO_WINDOW_FRAMES = 2000       # the tempo/key estimate reads the last 8 s, as the tempo/key task
HISTORY_FRAMES = TEMPO_WINDOW_FRAMES + CONTEXT_STEPS * STEP_FRAMES
FRAME_S = 1.0 / CONTROL_RATE_HZ

# Note classes: MIDI pitches LOW..HIGH, then the rest class.
NOTE_RANGES = {"bass": (28, 67), "counter": (43, 91)}
N_PITCH_CLASSES = 12

LOUDNESS_CENTRE_DB, LOUDNESS_SPAN_DB = -40.0, 20.0  # model loudness = (dB - centre) / span
REGISTER_CENTRE, REGISTER_SPAN = 60.0, 12.0          # harmony register = (MIDI - centre) / span


def n_note_classes(role: str) -> int:
    low, high = NOTE_RANGES[role]
    return high - low + 2  # every pitch, and the rest class last


def output_fields() -> tuple[tuple[str, int], ...]:
    """(name, width) of each field of one predicted bin, in order."""
    fields: list[tuple[str, int]] = []
    for role in ("bass", "counter"):
        fields += [(f"{role}_note", n_note_classes(role)), (f"{role}_onset", 1), (f"{role}_loudness", 1)]
    fields += [("harmony_pitch_classes", N_PITCH_CLASSES), ("harmony_register", 1), ("harmony_onset", 1),
               ("harmony_loudness", 1), ("drums_onset", 1), ("drums_loudness", 1)]
    return tuple(fields)


def output_slices() -> dict[str, slice]:
    """Field name -> slice into one bin's output vector."""
    slices, start = {}, 0
    for name, width in output_fields():
        slices[name] = slice(start, start + width)
        start += width
    return slices


OUTPUT_WIDTH = sum(width for _, width in output_fields())


def scale_loudness(loudness_db):  # noqa: ANN001, ANN201 (numpy array or torch tensor)
    return (loudness_db - LOUDNESS_CENTRE_DB) / LOUDNESS_SPAN_DB


def unscale_loudness(value):  # noqa: ANN001, ANN201
    return value * LOUDNESS_SPAN_DB + LOUDNESS_CENTRE_DB
