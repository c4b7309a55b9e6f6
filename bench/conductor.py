#!/usr/bin/env python3
"""The conductor's cost per call on one thread: the ONNX model alone, and the whole task (input
steps, model, plans for every role) as its worker runs it every 40 ms over a looped leader.

Target (issue 9): at most 5 ms per call. Run it on an idle machine.

`python bench/conductor.py [--model exported_models/conductor.onnx] [--seconds 60]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.melody import DEMO_PATH  # noqa: E402
from engine.audio_io import read_mono  # noqa: E402
from engine.conductor.contract import CONTEXT_STEPS, PERIOD_FRAMES  # noqa: E402
from engine.conductor.inputs import N_INPUTS  # noqa: E402
from engine.conductor.task import ConductorTask  # noqa: E402
from engine.features.streaming import StreamingAnalyzer  # noqa: E402
from engine.models.conductor import DEFAULT_CONDUCTOR, ConductorRunner, load_conductor_info  # noqa: E402
from engine.scheduling import FrameHistory  # noqa: E402


def percentiles(times_s: list[float]) -> str:
    ms = np.array(times_s) * 1e3
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, max {ms.max():.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_CONDUCTOR)
    parser.add_argument("--seconds", type=float, default=60.0, help="leader time the task runs over")
    args = parser.parse_args()
    info = load_conductor_info(args.model)
    runner = ConductorRunner(info)
    context = np.random.default_rng(0).standard_normal((CONTEXT_STEPS, N_INPUTS)).astype(np.float32)
    for _ in range(20):
        runner.run(context)
    model_times = []
    for _ in range(500):
        began = time.perf_counter()
        runner.run(context)
        model_times.append(time.perf_counter() - began)
    frames = StreamingAnalyzer(48000).analyze(read_mono(DEMO_PATH, 48000)).values
    frames = np.tile(frames, (int(np.ceil(args.seconds * 250 / len(frames))), 1))[: int(args.seconds * 250)]
    task = ConductorTask(args.model)
    task.warm_up()
    history, out, task_times = FrameHistory(), np.zeros(task.result_size), []
    for count in range(1, len(frames) + 1):
        history.append(frames[count - 1])
        if count % PERIOD_FRAMES == 0:
            window = history.window(count, task.history_frames)
            began = time.perf_counter()
            task.compute(window, out, count)
            task_times.append(time.perf_counter() - began)
    print(f"conductor {args.model.name} ({info.sidecar['parameters']} parameters), one thread")
    print(f"model call: {percentiles(model_times)} over {len(model_times)} calls")
    print(f"task call (inputs + model + 4 role plans): {percentiles(task_times)} over {len(task_times)} calls "
          f"({args.seconds:.0f} s of leader); target 5 ms")


if __name__ == "__main__":
    main()
