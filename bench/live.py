#!/usr/bin/env python3
"""The live host on the JACK dummy server: callbacks, xruns and callback time per block size
and voice count, with the task worker running and the take recorded. Run it on an idle machine.

Each block size first runs a trivial passthrough stream (voices 0): the xruns the server and
the machine produce with no work at all, the floor against which Tutti's rows are read.

`python bench/live.py [--seconds 10] [--blocks 64 128 256] [--voices 1 4 6]`
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.jack import private_jack_server  # noqa: E402
from demo.melody import DEMO_PATH  # noqa: E402
from engine.config import VoiceConfig, load_config  # noqa: E402
from realtime.devices import resolve_device  # noqa: E402
from realtime.live import LiveOptions, LiveSession  # noqa: E402
from realtime.telemetry import CallbackTelemetry  # noqa: E402

KINDS = ("reference:plucked-bass", "reference:organ", "reference:bowed-strings")
INTERVALS = (-12, -5, 4, 7, -24, 12)


def config_with_voices(n_voices: int, block: int):
    """The shipped config with exactly `n_voices` reference voices."""
    base = load_config(sets=[f"engine.block_samples={block}", "midi.virtual_port=false"])
    voices = tuple(
        (f"v{i}", VoiceConfig(kind=KINDS[i % 3], interval_semitones=INTERVALS[i], gain_db=-12.0))
        for i in range(n_voices)
    )
    return dataclasses.replace(base, voices=voices)


def passthrough(block: int, seconds: float) -> CallbackTelemetry:
    """Telemetry of a stream whose callback only copies its input to both outputs."""
    import sounddevice as sd

    telemetry = CallbackTelemetry(block, 48000)

    def callback(indata, outdata, frames, time_info, status) -> None:  # noqa: ANN001
        arrival = time.perf_counter()
        outdata[:, 0] = indata[:, 0]
        outdata[:, 1] = indata[:, 0]
        telemetry.record_callback(arrival, time.perf_counter(), bool(status))

    with sd.Stream(samplerate=48000, blocksize=block, channels=(1, 2), dtype="float32", callback=callback):
        time.sleep(seconds)
    return telemetry


def _row(block: int, n_voices: int, telemetry: CallbackTelemetry, misses: int) -> str:
    t = telemetry.snapshot()
    block_ms = block / 48.0
    return (
        f"{block:5d} {n_voices:6d} {t['callbacks']:9d} {t['xruns']:5d} {t['callback_ms_p50']:7.3f} "
        f"{t['callback_ms_p99']:7.3f} {t['callback_ms_max']:7.3f} "
        f"{t['callback_ms_p50'] / block_ms:6.1%} {t['callback_ms_p99'] / block_ms:6.1%} {misses:6d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--blocks", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--voices", type=int, nargs="+", default=[1, 4, 6])
    args = parser.parse_args()
    print(f"{'block':>5} {'voices':>6} {'callbacks':>9} {'xruns':>5} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'p50 %':>6} {'p99 %':>6} {'misses':>6}")
    for block in args.blocks:
        with private_jack_server(block):
            print(_row(block, 0, passthrough(block, args.seconds), 0), flush=True)
            for n_voices in args.voices:
                config = config_with_voices(n_voices, block)
                with tempfile.TemporaryDirectory() as tmp:
                    options = LiveOptions(
                        input_file=DEMO_PATH, loop=True, duration_s=args.seconds,
                        record_dir=Path(tmp) / "take", print_telemetry=False,
                    )
                    session = LiveSession(config, resolve_device(None), options)
                    session.run()
                print(_row(block, n_voices, session.telemetry, session.processor.scheduler.deadline_misses), flush=True)


if __name__ == "__main__":
    main()
