"""Helpers for benchmarks that run the live host on a private JACK dummy server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator


@contextlib.contextmanager
def private_jack_server(period: int, sample_rate_hz: int = 48000) -> Iterator[str]:
    """Start `jackd -n NAME -d dummy` with the given period, point PortAudio at it, stop it after."""
    name = f"tutti-bench-{period}-{os.getpid()}"
    process = subprocess.Popen(
        ["jackd", "-n", name, "-r", "-d", "dummy", "-r", str(sample_rate_hz), "-p", str(period)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["jack_lsp", "-s", name], capture_output=True).returncode != 0:
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"jackd {name} did not start")
        time.sleep(0.05)
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    import sounddevice as sd

    if sd._initialized:
        sd._terminate()  # PortAudio reads the server name and device list at initialisation
    sd._initialize()
    try:
        yield name
    finally:
        if sd._initialized:
            sd._terminate()  # let PortAudio leave the server before it stops
        process.terminate()
        process.wait(timeout=10)
        if previous is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = previous
        sd._initialize()
