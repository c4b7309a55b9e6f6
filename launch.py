#!/usr/bin/env python3
"""Tutti's one entry point. `python launch.py SUBCOMMAND --help` explains each subcommand."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.config.cli import add_config_options as _add_config_options
from engine.config.cli import resolve_config


def _add_block_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--blocksize", type=int, default=None, metavar="N",
        help="block size in samples, 16..4096 (default: engine.block_samples, 128)",
    )


def _resolve_config(args: argparse.Namespace):
    blocksize = getattr(args, "blocksize", None)
    return resolve_config(args, *([f"engine.block_samples={blocksize}"] if blocksize is not None else []))


def _cmd_analyze(args: argparse.Namespace) -> None:
    from engine.offline import analyze_file

    n_frames = analyze_file(args.input, args.out, _resolve_config(args), force=args.force)
    print(f"wrote {args.out}: {n_frames} frames")


def _cmd_perform(args: argparse.Namespace) -> None:
    from engine.offline import perform_file

    session = perform_file(args.input, args.out, _resolve_config(args), force=args.force,
                           automation_path=args.automation)
    timings, latency = session["timings"], session["latency_ms"]
    print(
        f"wrote {args.out}: {session['duration_s']:.1f} s, voices {', '.join(session['voices'])}; "
        f"{timings['realtime_factor']:.1f}x real time, block p99 {timings['block_us_p99']:.0f} us; "
        f"onset latency {latency['onset']:.1f} ms; mix peak {session['mix_peak_dbfs']:.1f} dBFS"
    )
    if session.get("followers"):
        from gui.roll import write_followers_roll

        roll = write_followers_roll(args.out / session["followers"], f"{args.input.name}: the conductor's followers")
        print(f"piano roll of the leader and the conductor's followers: {roll}")


def _cmd_live(args: argparse.Namespace) -> None:
    from realtime.live import LiveOptions, run_live

    if args.samplerate is not None:
        args.sets.append(f"engine.sample_rate_hz={args.samplerate}")
    if args.midi is not None:
        args.sets.append(f"midi.port={json.dumps(args.midi)}")
    options = LiveOptions(
        device=args.device, input_file=args.input_file, loop=args.loop, duration_s=args.duration,
        record_dir=args.record, force=args.force, headphones=args.headphones, print_telemetry=True,
        gui=args.gui,
    )
    session = run_live(_resolve_config(args), options)
    if session["mode"] == "offline-fallback":
        print(f"wrote {options.record_dir or 'the session folder'} (mode offline-fallback)")
        return
    telemetry = session["telemetry"]
    print(
        f"tutti: {session['stop_reason']}; {telemetry['callbacks']} callbacks, {telemetry['xruns']} xruns, "
        f"callback p99 {telemetry['callback_ms_p99']:.2f} ms, deadline misses {telemetry['deadline_misses']}, "
        f"latency {telemetry['latency_ms']['total']:.1f} ms (onset {telemetry['latency_ms']['onset']:.1f} + "
        f"device {telemetry['latency_ms']['device']:.1f})"
    )
    if session["recording"] and session["recording"].get("error"):
        print(f"tutti: {session['recording']['error']}", file=sys.stderr)
    if session["failure"]:
        # PortAudio and MIDI can hang at exit once their JACK server is gone: leave without them.
        print(f"tutti: error: {session['failure']}; the recording was closed", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)


def _cmd_devices(args: argparse.Namespace) -> None:
    from realtime.devices import list_devices
    from realtime.midi import list_midi_inputs

    _resolve_config(args)  # checks --config/--set like every subcommand
    print(list_devices())
    print(list_midi_inputs())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch.py",
        description="Tutti, a real-time neural accompanist.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    for name, help_text, description, out_metavar, run in (
        ("analyze", "write the causal analysis of a file as CSV",
         "Write one CSV row per 4 ms frame: time_s, f0_hz, voicing, loudness_db, onset.",
         "FEATURES.csv", _cmd_analyze),
        ("perform", "play a file through the ensemble offline",
         "Render INPUT through the ensemble: DIR/input.wav, mix.wav, one WAV per voice, "
         "config.toml and session.json (48 kHz float32, all the same length).",
         "DIR", _cmd_perform),
    ):
        offline = commands.add_parser(name, help=help_text, description=description)
        offline.add_argument("input", type=Path, metavar="INPUT", help="audio file (any rate, any channels)")
        offline.add_argument("--out", type=Path, required=True, metavar=out_metavar)
        offline.add_argument(
            "--force", action="store_true",
            help="replace Tutti's own earlier output (never a file Tutti did not write)",
        )
        if name == "perform":
            offline.add_argument(
                "--automation", type=Path, default=None, metavar="SESSION.json",
                help="replay a live take's faders, mutes, swaps and panics (its session.json) at their samples",
            )
        _add_block_option(offline)
        _add_config_options(offline)
        offline.set_defaults(run=run)

    live = commands.add_parser(
        "live", help="play along live through an audio device",
        description="Open a duplex audio stream and accompany the input live. With no audio device "
        "at all, perform the input file (or the demo) offline into the session folder instead.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    live.add_argument("--device", default=None, help="device index or case-insensitive name substring")
    live.add_argument("--samplerate", type=int, choices=(48000, 96000), default=None, help="48000 or 96000")
    live.add_argument("--input-file", type=Path, default=None, metavar="WAV", help="play a file as the microphone")
    live.add_argument("--loop", action="store_true", help="loop --input-file")
    live.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    live.add_argument("--record", type=Path, default=None, metavar="DIR", help="record the session into DIR")
    live.add_argument("--force", action="store_true", help="replace Tutti's earlier take in --record DIR")
    live.add_argument("--headphones", action="store_true", help="no echo canceller (the mic cannot hear us)")
    live.add_argument("--midi", default=None, metavar="PORT", help="MIDI input port name substring")
    window = live.add_mutually_exclusive_group()
    window.add_argument("--gui", dest="gui", action="store_const", const=True, default=None,
                        help="open the mixer window even without DISPLAY (e.g. QT_QPA_PLATFORM=offscreen)")
    window.add_argument("--no-gui", dest="gui", action="store_const", const=False,
                        help="no mixer window, even with a display")
    _add_block_option(live)
    _add_config_options(live)
    live.set_defaults(run=_cmd_live)

    devices = commands.add_parser("devices", help="list audio devices (like sounddevice -l)")
    _add_config_options(devices)
    devices.set_defaults(run=_cmd_devices)

    from training.data.cli import add_prepare_data_parser

    add_prepare_data_parser(commands)

    from engine.retrieval.cli import add_retrieval_parsers

    add_retrieval_parsers(commands)

    from training.voice.cli import add_voice_parsers

    add_voice_parsers(commands)

    from training.conductor.cli import add_conductor_parser

    add_conductor_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.errors import TuttiError

    try:
        args.run(args)
    except TuttiError as err:  # one line, whatever a file name or value in it holds
        print(f"tutti: error: {' '.join(str(err).splitlines())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tutti: stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
