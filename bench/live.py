#!/usr/bin/env python3
"""The live host on the JACK dummy server, each row read beside its passthrough floor.

A row runs Tutti (engine process + control process, demo input looped, take recorded) with a
load in the control process (bench/loads.py: none, a GUI-like Python thread busy 4 or 8 ms of
every 16 ms, or conductor- and retrieval-like tasks). Its floor is a do-nothing passthrough
client beside the same load placed in a process of its own: what the CPU alone costs on this
machine. Floor and row alternate, `--pairs` times; the table gives the median of each figure.
Callback p99 is given as wall time and as the callback thread's CPU time. Target (issue 10):
xruns at most 1.5 x floor + 5, and, with 12 synth instances, callback p99 at most 50% of the
block. Run it on an idle machine: anything else running shows up as xruns.

`python bench/live.py [--seconds 15] [--pairs 3] [--blocks 128 256] [--voices 6 12] [--loads none gui4 gui8 tasks] [--midi] [--conductor] [--models]`
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.jack import private_jack_server  # noqa: E402
from bench.loads import LOADS, LoadProcess, LoadThreads  # noqa: E402
from demo.melody import DEMO_PATH  # noqa: E402
from engine.config import VoiceConfig, load_config  # noqa: E402
from realtime.devices import resolve_device  # noqa: E402
from realtime.live import LiveOptions, LiveSession  # noqa: E402
from realtime.telemetry import CallbackTelemetry  # noqa: E402

KINDS = ("reference:plucked-bass", "reference:organ", "reference:bowed-strings")
MODEL_KINDS = tuple(f"model:ensemble/{name}" for name in ("bass", "keys", "guitar", "strings", "winds", "drums"))
INTERVALS = (-12, -5, 4, 7, -24, 12, -17, 16, 19, -8, 3, 9)


ROLES = ("bass", "harmony", "counter")  # with --conductor, the first three voices play these


def config_with_voices(n_voices: int, block: int, midi: bool = False, conductor: bool = False, models: bool = False):
    """The shipped config with exactly `n_voices` reference voices (MIDI's virtual port on or off);
    with `conductor`, the first three play the shipped conductor's roles (its MIDI out on too);
    with `models`, the voices play the shipped decoder's six instruments in turn."""
    kinds = MODEL_KINDS if models else KINDS
    base = load_config(sets=[f"engine.block_samples={block}", f"midi.virtual_port={str(midi).lower()}"])
    voices = tuple(
        (f"v{i}", VoiceConfig(kind=kinds[i % len(kinds)], interval_semitones=INTERVALS[i % len(INTERVALS)], gain_db=-14.0,
                              role=ROLES[i] if conductor and i < len(ROLES) else ""))
        for i in range(n_voices)
    )
    return dataclasses.replace(base, voices=voices)


def passthrough(block: int, seconds: float) -> dict:
    """Telemetry of a stream whose callback only copies its input to both outputs."""
    import sounddevice as sd

    if not sd._initialized:  # a LiveSession before left the audio graph
        sd._initialize()
    telemetry = CallbackTelemetry(block, 48000)
    telemetry.reset()

    def callback(indata, outdata, frames, time_info, status) -> None:  # noqa: ANN001
        arrival = time.perf_counter()
        cpu = time.thread_time()
        outdata[:, 0] = indata[:, 0]
        outdata[:, 1] = indata[:, 0]
        telemetry.record_callback(arrival, time.perf_counter(), bool(status), time.thread_time() - cpu)

    with sd.Stream(samplerate=48000, blocksize=block, channels=(1, 2), dtype="float32", callback=callback):
        time.sleep(seconds)
    return telemetry.snapshot()


def tutti(block: int, n_voices: int, seconds: float, load: str, midi: bool = False, conductor: bool = False,
          models: bool = False) -> dict:
    """Telemetry of a recorded live take with `load` running in the control process."""
    import sounddevice as sd

    if not sd._initialized:
        sd._initialize()  # to resolve the device; the session leaves the graph again
    config = config_with_voices(n_voices, block, midi, conductor, models)
    with tempfile.TemporaryDirectory() as tmp, LoadThreads(load):
        options = LiveOptions(input_file=DEMO_PATH, loop=True, duration_s=seconds,
                              record_dir=Path(tmp) / "take", print_telemetry=False)
        session = LiveSession(config, resolve_device(None), options)
        session.run()
        telemetry = dict(session.telemetry)
        session.engine.close()
    return telemetry


def _passthrough_in_own_process(block: int, seconds: float) -> dict:
    """The floor's client in a fresh process: it does not inherit the priority a LiveSession
    lowered for this (control) process."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(passthrough, (block, seconds))


def measure_pair(block: int, n_voices: int, seconds: float, load: str, midi: bool, conductor: bool,
                 models: bool) -> tuple[dict, dict]:
    with LoadProcess(load):
        floor = _passthrough_in_own_process(block, seconds)
    return floor, tutti(block, n_voices, seconds, load, midi, conductor, models)


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def row_text(block: int, n_voices: int, load: str, floors: list[dict], rows: list[dict]) -> str:
    block_ms = block / 48.0
    floor_x, row_x = _median(floors, "xruns"), _median(rows, "xruns")
    p99, cpu99 = _median(rows, "callback_ms_p99"), _median(rows, "callback_cpu_ms_p99")
    misses = max(row["deadline_misses"] for row in rows)
    xrun_ok = row_x <= 1.5 * floor_x + 5
    load_ok = p99 <= 0.5 * block_ms or n_voices < 12
    return (
        f"| {block} | {n_voices} | {load} | {floor_x:.0f} | {row_x:.0f} | {_median(rows, 'callbacks'):.0f} | "
        f"{_median(rows, 'callback_ms_p50'):.3f} | {p99:.3f} ({p99 / block_ms:.0%}) | "
        f"{cpu99:.3f} ({cpu99 / block_ms:.0%}) | {misses} | {'met' if xrun_ok and load_ok else 'NOT met'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--blocks", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--voices", type=int, nargs="+", default=[6, 12])
    parser.add_argument("--loads", nargs="+", default=list(LOADS), choices=LOADS)
    parser.add_argument("--midi", action="store_true",
                        help="keep the default MIDI config (a virtual JACK MIDI input in the control process)")
    parser.add_argument("--conductor", action="store_true",
                        help="the first three voices play the shipped conductor's roles (its task and MIDI out run)")
    parser.add_argument("--models", action="store_true",
                        help="the voices play the shipped decoder's instruments (one batched ORT call per frame)")
    args = parser.parse_args()
    print("| block | voices | load in control | floor xruns | xruns | callbacks | p50 ms | p99 ms (of block) "
          "| p99 thread CPU ms | deadline misses | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for block in args.blocks:
        with private_jack_server(block):
            for load in args.loads:
                for n_voices in args.voices:
                    pairs = [measure_pair(block, n_voices, args.seconds, load, args.midi, args.conductor, args.models)
                             for _ in range(args.pairs)]
                    floors, rows = [p[0] for p in pairs], [p[1] for p in pairs]
                    label = (load + (" + MIDI" if args.midi else "") + (" + conductor" if args.conductor else "")
                             + (" (model voices)" if args.models else ""))
                    print(row_text(block, n_voices, label, floors, rows), flush=True)


if __name__ == "__main__":
    main()
