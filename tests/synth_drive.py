"""Drive a synth part the way the block processor does, for the engine/synth tests.

`set_targets` at every control-frame boundary, `render` in blocks of a given size, each block
split at frame edges (DESIGN.md section 3), plus a numpy statement of the ramp contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BLOCK_SIZES = (1, 64, 65, 128, 333, 4096)


def render_frames(
    set_targets: Callable[..., None] | None,
    render: Callable[[np.ndarray, int, int], None],
    targets: Sequence[tuple],
    frame_samples: int,
    block_samples: int,
    n_samples: int | None = None,
    dtype: type = np.float64,
) -> np.ndarray:
    """Render `n_samples` (default: one frame per target); set_targets(*targets[k]) runs at the
    start of frame k while k < len(targets), after which the targets hold."""
    n = len(targets) * frame_samples if n_samples is None else n_samples
    out = np.zeros(n, dtype=dtype)
    position = 0
    while position < n:
        end = min(position + block_samples, n)
        while position < end:
            frame, into = divmod(position, frame_samples)
            if into == 0 and set_targets is not None and frame < len(targets):
                set_targets(*targets[frame])
            take = min(end - position, frame_samples - into)
            render(out, position, take)
            position += take
    return out


def ramp_per_sample(
    frame_targets: np.ndarray, frame_samples: int, initial: np.ndarray
) -> np.ndarray:
    """The ramp contract in numpy: float[n_frames, k] targets -> float[n_frames * F, k].

    Within frame f, sample j has prev + (target_f - prev) * (j + 1) / F, prev being the value
    reached at the end of the previous frame (`initial` before frame 0).
    """
    weights = (np.arange(frame_samples) + 1.0) / frame_samples
    previous = np.vstack([initial[None, :], frame_targets[:-1]])
    change = frame_targets - previous
    ramps = previous[:, None, :] + change[:, None, :] * weights[None, :, None]
    return ramps.reshape(-1, frame_targets.shape[1])
