#!/usr/bin/env python3
"""Onset latency and pitch settling through the live path on the JACK dummy server.

For each block size a private jackd runs with that period; `live` plays a file of notes
(110, 220 and 440 Hz, each after silence) as its microphone and records the take. Onset
latency is read off the recording: from each note's first input sample to the mix reaching
-20 dB of its steady level. Pitch settling is the analyser's (onset to f0 within 50 cents).
Printed beside the device latency PortAudio reports. `python bench/latency.py [--blocks ...]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.jack import private_jack_server  # noqa: E402
from engine.audio_io import write_float_wav  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.features.latency import measure_pitch_settle_ms  # noqa: E402
from engine.latency import ONSET_THRESHOLD_DB, causal_rms  # noqa: E402
from realtime.devices import resolve_device  # noqa: E402
from realtime.live import LiveOptions, LiveSession  # noqa: E402

SR = 48000
NOTES_HZ = (110.0, 220.0, 440.0)
GAP_S, NOTE_S = 0.5, 0.7


def note_file(path: Path) -> list[int]:
    """Write the test notes; returns each note's first sample."""
    pieces, onsets, position = [], [], 0
    for f0 in NOTES_HZ:
        gap = np.zeros(int(GAP_S * SR))
        t = np.arange(int(NOTE_S * SR)) / SR
        tone = sum(0.25 / h * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 6))
        pieces += [gap, tone]
        onsets.append(position + len(gap))
        position += len(gap) + len(tone)
    write_float_wav(path, np.concatenate(pieces + [np.zeros(int(GAP_S * SR))]), SR)
    return onsets


def onset_latencies_ms(mix: np.ndarray, onsets: list[int]) -> list[float]:
    envelope = causal_rms(mix, SR // 1000)
    result = []
    for onset in onsets:
        steady = np.median(envelope[onset + int(0.2 * SR): onset + int(0.5 * SR)])
        above = np.nonzero(envelope[onset:] >= steady * 10 ** (ONSET_THRESHOLD_DB / 20))[0]
        result.append(above[0] * 1000 / SR if above.size else float("nan"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, nargs="+", default=[64, 128, 256])
    args = parser.parse_args()
    settle = {f0: measure_pitch_settle_ms(SR, f0) for f0 in NOTES_HZ}
    header = " ".join(f"{'onset ' + str(int(f)) + ' Hz':>13}" for f in NOTES_HZ)
    print(f"{'block':>5} {header} {'device ms':>9} {'total ms':>8}   pitch settle: "
          + ", ".join(f"{int(f)} Hz {settle[f]:.0f} ms" for f in NOTES_HZ))
    with tempfile.TemporaryDirectory() as tmp:
        notes = Path(tmp) / "notes.wav"
        onsets = note_file(notes)
        for block in args.blocks:
            with private_jack_server(block):
                config = load_config(sets=[f"engine.block_samples={block}", "midi.virtual_port=false"])
                take = Path(tmp) / f"take{block}"
                options = LiveOptions(input_file=notes, record_dir=take, print_telemetry=False)
                session = LiveSession(config, resolve_device(None), options)
                session.run()
                session.finish()
            mix, _ = sf.read(str(take / "mix.wav"))
            latencies = onset_latencies_ms(mix, onsets)
            device_ms = session.device_latency_s * 1000
            cells = " ".join(f"{value:13.1f}" for value in latencies)
            print(f"{block:5d} {cells} {device_ms:9.2f} {max(latencies) + device_ms:8.1f}", flush=True)


if __name__ == "__main__":
    main()
