"""The automation log of a live take: every fader, pan, mute, solo, swap and panic, stamped with
the sample at which the audio thread took it, so that `perform --automation` replays a take in
which knobs moved sample for sample.

The processor (engine/processor.py) queues records (sample, row, column, value): row >= 0 a
voice's mixer column (GAIN, PAN, MUTE, SOLO as stored: linear gain, -1..1, 0/1), row -1 the
master's (MASTER_GAIN, INPUT_MONITOR), row -2 a swap of voice `column` to kind index `value`,
row -3 a panic. session.json keeps them with the voice names and kinds they refer to.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from engine.errors import TuttiError
from engine.mixer import GAIN, INPUT_MONITOR, MASTER_GAIN, MUTE, PAN, SOLO, db_to_gain
from engine.processor import MASTER_ROW, PANIC_ROW, SWAP_ROW

# What a stored mixer value may be: a linear gain 0..+60 dB (faders stop at +12, a config's
# gain_db has no limit, so only the absurd is refused), pan -1..1, mute and solo 0 or 1, the input
# monitor up to 0 dB. An edited session.json can hold anything; such a value is refused rather
# than replayed into the mix.
_MAX_GAIN = db_to_gain(60.0)
_VOICE_RANGES = {GAIN: (0.0, _MAX_GAIN), PAN: (-1.0, 1.0), MUTE: (0.0, 1.0, "switch"), SOLO: (0.0, 1.0, "switch")}
_MASTER_RANGES = {MASTER_GAIN: (0.0, _MAX_GAIN), INPUT_MONITOR: (0.0, 1.0)}


def _in_range(limits: tuple, value: float) -> bool:
    return limits[0] <= value <= limits[1] + 1e-9 and (len(limits) == 2 or value in (0.0, 1.0))


FORMAT = "sample, row, column, value; row >= 0 voice mixer column, -1 master, -2 swap to kind, -3 panic"


def automation_record(records: np.ndarray, voice_names: tuple[str, ...], kinds: tuple[str, ...]) -> dict:
    """The session.json entry for a take's automation records [n, 4]."""
    return {
        "format": FORMAT,
        "voices": list(voice_names),
        "kinds": list(kinds),
        "records": [[int(r[0]), int(r[1]), int(r[2]), float(r[3])] for r in records],
    }


def read_automation(path: Path, voice_names: tuple[str, ...], kinds: tuple[str, ...]) -> np.ndarray:
    """The automation records of a take's session.json, checked against the config's voices
    and kinds; a TuttiError names the file and what is wrong."""
    path = Path(path)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))["automation"]
        names, entry_kinds, records = tuple(entry["voices"]), tuple(entry["kinds"]), entry["records"]
        table = np.array(records, dtype=np.float64).reshape(-1, 4)
    except (OSError, UnicodeDecodeError) as err:
        raise TuttiError(f"automation file {path} cannot be read ({err}): give a take's session.json") from None
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise TuttiError(f"automation file {path} holds no automation log ({type(err).__name__}: {err}): "
                         "give the session.json of a live take") from None
    if names != tuple(voice_names) or entry_kinds != tuple(kinds):
        raise TuttiError(f"automation file {path} is for voices {list(names)} with kinds {list(entry_kinds)}, "
                         f"not {list(voice_names)} / {list(kinds)}: perform with the take's config.toml")
    n_voices = len(voice_names)
    for sample, row, column, value in table:
        ok = all(math.isfinite(x) and x == round(x) for x in (sample, row, column)) and math.isfinite(value) and sample >= 0
        if ok and row >= 0:
            ok = row < n_voices and 0 <= column < 4 and _in_range(_VOICE_RANGES[int(column)], value)
        elif ok and row == MASTER_ROW:
            ok = 0 <= column < 2 and _in_range(_MASTER_RANGES[int(column)], value)
        elif ok and row == SWAP_ROW:
            ok = 0 <= column < n_voices and 0 <= value < len(kinds) and value == round(value)
        else:
            ok = ok and row == PANIC_ROW
        if not ok:
            raise TuttiError(f"automation file {path} has a bad record {[sample, row, column, value]}: "
                             "give an unedited session.json")
    return table
