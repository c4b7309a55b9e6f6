"""The config options every subcommand takes, and resolving them (argparse side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.config.loading import load_config
from engine.config.schema import TuttiConfig


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` (repeatable overlay) and `--set SECTION.KEY=VALUE` (repeatable)."""
    parser.add_argument(
        "--config", type=Path, action="append", default=[], metavar="FILE",
        help="TOML overlay on the shipped defaults (repeatable, applied in order)",
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set voices.bass.gain_db=-6 (repeatable)",
    )


def resolve_config(args: argparse.Namespace, *extra_sets: str) -> TuttiConfig:
    """The config from the shipped defaults, the --config overlays, --set, then `extra_sets`."""
    return load_config(args.config, [*args.sets, *extra_sets])
