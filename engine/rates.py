"""Rates and frame sizes shared by every part of the engine (DESIGN.md section 3)."""

from engine.errors import TuttiError

ENGINE_SAMPLE_RATES_HZ = (48000, 96000)
TRAINING_SAMPLE_RATES_HZ = (16000, 24000)
CONTROL_RATE_HZ = 250
MIN_BLOCK_SAMPLES = 16
MAX_BLOCK_SAMPLES = 4096
DEFAULT_BLOCK_SAMPLES = 128


def frame_samples(sample_rate_hz: int) -> int:
    """Samples in one 4 ms control frame at `sample_rate_hz` (192 at 48 kHz, 64 at 16 kHz)."""
    if sample_rate_hz % CONTROL_RATE_HZ:
        raise TuttiError(
            f"sample rate {sample_rate_hz} Hz is not a multiple of the {CONTROL_RATE_HZ} Hz "
            "control rate: use 16000, 24000, 48000 or 96000"
        )
    return sample_rate_hz // CONTROL_RATE_HZ


def check_block_samples(block_samples: int) -> int:
    """Return `block_samples` if it lies in 16..4096, else raise a TuttiError saying so."""
    if not MIN_BLOCK_SAMPLES <= block_samples <= MAX_BLOCK_SAMPLES:
        raise TuttiError(
            f"block size {block_samples} is outside {MIN_BLOCK_SAMPLES}..{MAX_BLOCK_SAMPLES}: "
            "pick a block size in that range (default 128)"
        )
    return block_samples
