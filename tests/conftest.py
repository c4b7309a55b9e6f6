"""Shared fixtures: a real JACK server (dummy backend) for device tests, offscreen Qt."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _jack_running() -> bool:
    return subprocess.run(["jack_lsp"], capture_output=True, timeout=5).returncode == 0


@pytest.fixture(scope="session")
def jack_server():
    """A running JACK server at 48 kHz, period 128: the one CI started, or one started here.

    With CI=true a missing jackd fails the test; elsewhere it skips with the install hint.
    """
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        message = "jackd is not installed: run ./setup.sh (it installs jackd2)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    if _jack_running():
        yield None
        return
    process = subprocess.Popen(
        ["jackd", "-r", "-d", "dummy", "-r", "48000", "-p", "128"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _jack_running():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("jackd did not start within 10 s")
        time.sleep(0.05)
    import sounddevice as sd

    sd._terminate()  # PortAudio reads the device list once: reread it now that JACK runs
    sd._initialize()
    yield process
    process.terminate()
    process.wait(timeout=10)
