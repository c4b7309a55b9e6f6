"""The synth allocates nothing on the audio path after warm-up.

The check runs in a fresh process (`tests.allocation.run_fresh`). numba's own call boundary
wraps every ndarray argument passed from Python in a MemInfo that it allocates and frees within
the call; the check counts those crossings and requires that the kernels add no allocation of
their own and that nothing stays allocated.
"""

from __future__ import annotations

import json

from tests.allocation import run_fresh

SCRIPT = r"""
import itertools, json, tracemalloc
import numba
import numpy as np
from numba.core.runtime import rtsys
import engine.synth.harmonic, engine.synth.noise, engine.synth.reverb, engine.synth.voice_synth
from engine.synth.voice_synth import VoiceSynth

BLOCK = 128
voices = []
for rate in (48000, 96000):
    frame = rate // 250
    voice = VoiceSynth(rate, frame, 100, 65, 8000.0, reverb=True, seed=1)
    voices.append([voice, frame, 0, 0])  # voice, frame samples, samples into frame, frames
amplitudes = np.full(100, 0.01)
bands = np.full(65, 0.02)
f0s = [110.0 * (1.0 + 0.001 * k) for k in range(50)] + [0.0] * 10
out = np.zeros(BLOCK, dtype=np.float32)

def blocks(n):
    # Like the processor: every 128-sample block split at frame edges, targets at each edge
    # (1.5 blocks per frame at 48 kHz, 3 at 96 kHz).
    for _ in itertools.repeat(None, n):  # range() would allocate ints past 256
        for entry in voices:
            voice, frame = entry[0], entry[1]
            out.fill(0.0)
            position = 0
            while position < BLOCK:
                take = min(BLOCK - position, frame - entry[2])
                voice.render(out, position, take)
                position += take
                entry[2] += take
                if entry[2] == frame:
                    entry[2] = 0
                    entry[3] = (entry[3] + 1) % len(f0s)
                    voice.set_targets(f0s[entry[3]], amplitudes, bands)

blocks(200)  # warm-up: compile or load every kernel

crossings = [0]
def counted(kernel):
    def call(*args):
        crossings[0] += sum(isinstance(arg, np.ndarray) for arg in args)
        crossings[0] += sum(isinstance(a, np.ndarray) for arg in args if isinstance(arg, tuple) for a in arg)
        return kernel(*args)
    return call

patched = []
for module in (engine.synth.harmonic, engine.synth.noise, engine.synth.reverb, engine.synth.voice_synth):
    for name, value in list(vars(module).items()):
        if isinstance(value, numba.core.registry.CPUDispatcher):
            patched.append((module, name, value))
            setattr(module, name, counted(value))
before = rtsys.get_allocation_stats()
blocks(1000)
after = rtsys.get_allocation_stats()
for module, name, value in patched:
    setattr(module, name, value)
tracemalloc.start()
window_start = tracemalloc.get_traced_memory()[0]
blocks(50)
window_end, window_peak = tracemalloc.get_traced_memory()
tracemalloc.reset_peak()
later_start = tracemalloc.get_traced_memory()[0]
blocks(1000)
later_end, later_peak = tracemalloc.get_traced_memory()
print(json.dumps({"nrt_before": list(before), "nrt_after": list(after), "crossings": crossings[0],
                  "window_rise": window_peak - window_start, "later_rise": later_peak - later_start,
                  "later_growth": later_end - later_start,
                  "peak_abs": float(np.abs(out).max())}))
"""


def test_render_and_set_targets_allocate_nothing() -> None:
    stats = json.loads(run_fresh(SCRIPT, timeout_s=300))
    alloc, free, meminfo_alloc, meminfo_free = (
        b - a for a, b in zip(stats["nrt_before"], stats["nrt_after"])
    )
    assert stats["crossings"] > 0
    assert alloc == meminfo_alloc == stats["crossings"]  # only the boundary's argument wrappers
    assert free == alloc and meminfo_free == meminfo_alloc  # and nothing stays allocated
    # Python-side transients (call frames, small ints) peak no higher over 1000 blocks than
    # over the first 50, and nothing accumulates.
    assert stats["later_rise"] <= stats["window_rise"]
    assert stats["later_growth"] <= 0
    assert stats["peak_abs"] > 0.0  # the loop really rendered sound
