#!/usr/bin/env python3
"""Cost of instrument decoders in ONNX Runtime (1 intra-op thread, no spinning, CPU provider).

Per model: one ORT step (one 4 ms control frame) for B = 1 and for B = 6 voices in one batched
call, against six separate B = 1 calls (what six per-instrument decoders would cost), p50 and
p99 in microseconds, and six voices' cost as a share of one core at 250 frames a second.
`--sizes` also exports random-weight decoders of other sizes (needs torch) to show the trade.
Run it on an idle machine: `python bench/voice.py [--models exported_models/*.onnx] [--sizes]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.models.decoder import DecoderBatch, load_decoder_info  # noqa: E402
from engine.rates import CONTROL_RATE_HZ  # noqa: E402

SIZES = {  # name: decoder fields (training/voice/config.py)
    "GRU 128 + MLP 1x128": {"gru_units": 128, "mlp_units": 128},
    "GRU 256 + MLP 1x256 (default)": {},
    "GRU 512 + MLP 3x512": {"gru_units": 512, "mlp_units": 512, "mlp_layers": 3},
    "research: 3x GRU 512, 100 harmonics": {"gru_units": 512, "gru_layers": 3, "mlp_units": 512, "mlp_layers": 3, "n_harmonics": 100},
}


def time_steps(batches: list[DecoderBatch], steps: int) -> np.ndarray:
    """Seconds per frame to step every batch once, over `steps` frames of moving inputs."""
    rng = np.random.default_rng(0)
    times = np.zeros(steps)
    for k in range(steps + 50):
        for batch in batches:
            batch.f0_hz[:] = rng.uniform(60.0, 900.0, batch.batch)
            batch.loudness_db[:] = rng.uniform(-70.0, -10.0, batch.batch)
        start = time.perf_counter()
        for batch in batches:
            batch.step()
        if k >= 50:  # warm-up calls left out
            times[k - 50] = time.perf_counter() - start
    return times


def report(label: str, path: Path, steps: int) -> None:
    info = load_decoder_info(path)
    one = time_steps([DecoderBatch(info, 1)], steps)
    six = time_steps([DecoderBatch(info, 6)], steps)
    separate = time_steps([DecoderBatch(info, 1) for _ in range(6)], steps)
    print(f"{label} ({info.sidecar['parameters']} parameters, {path.stat().st_size / 1024:.0f} KiB)")
    for name, times in (("B=1", one), ("B=6 batched", six), ("6 x B=1", separate)):
        p50, p99 = np.percentile(times * 1e6, [50, 99])
        share = f"  six voices: {p50 * 1e-6 * CONTROL_RATE_HZ:6.1%} of a core (p50)" if name != "B=1" else ""
        print(f"  {name:12s} p50 {p50:7.1f} us  p99 {p99:7.1f} us{share}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, nargs="*", default=None, help="ONNX models (default exported_models/*.onnx)")
    parser.add_argument("--sizes", action="store_true", help="also time random-weight decoders of other sizes (torch)")
    parser.add_argument("--steps", type=int, default=2000, help="frames timed per case")
    args = parser.parse_args()
    models = args.models if args.models is not None else sorted(Path("exported_models").glob("*.onnx"))
    for path in models:
        report(path.name, path, args.steps)
    if args.sizes:
        import torch

        from training.voice.config import DecoderConfig
        from training.voice.decoder import Decoder
        from training.voice.export import export_decoder

        torch.set_num_threads(1)
        with tempfile.TemporaryDirectory() as folder:
            for label, fields in SIZES.items():
                config = DecoderConfig(instruments=("bass", "keys", "guitar", "strings", "winds", "drums"), **fields)
                path = Path(folder) / "size.onnx"
                export_decoder(Decoder(config), path, config={}, manifest_sha256="", metrics={}, steps=0, force=True)
                report(label, path, args.steps)


if __name__ == "__main__":
    main()
