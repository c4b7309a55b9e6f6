"""Shared fixtures: real JACK servers (dummy backend) for device tests, offscreen Qt."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _require_jack() -> None:
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        message = "jackd is not installed: run ./setup.sh (it installs jackd2)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def jack_answers(server: str | None = None) -> bool:
    """True when the named (or default) JACK server is running."""
    command = ["jack_lsp"] + (["-s", server] if server else [])
    return subprocess.run(command, capture_output=True, timeout=10).returncode == 0


@contextlib.contextmanager
def jack_server_process(name: str | None, period: int, sample_rate_hz: int = 48000) -> Iterator[subprocess.Popen]:
    """Start `jackd [-n NAME] -r -d dummy -r RATE -p PERIOD`, wait for it, stop it afterwards."""
    command = ["jackd"] + (["-n", name] if name else []) + ["-r", "-d", "dummy", "-r", str(sample_rate_hz), "-p", str(period)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not jack_answers(name):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"jackd ({name or 'default'}, period {period}) did not start within 10 s")
        time.sleep(0.05)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _reload_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()  # PortAudio reads the device list once: reread it now that JACK runs
    sd._initialize()


@pytest.fixture(scope="session")
def jack_server() -> Iterator[None]:
    """The default JACK server at 48 kHz, period 128: the one CI started, or one started here.

    With CI=true a missing jackd fails the test; elsewhere it skips with the install hint.
    """
    _require_jack()
    if jack_answers():
        yield None
        return
    with jack_server_process(None, 128):
        _reload_portaudio()
        yield None
        import sounddevice as sd

        sd._terminate()  # leave the server before it stops: PortAudio aborts at exit otherwise


@pytest.fixture()
def named_jack_server(request) -> Iterator[tuple[str, subprocess.Popen]]:
    """A private JACK server `tutti-test-<period>` (period from the test's parameter, default 128)."""
    _require_jack()
    period = getattr(request, "param", 128)
    name = f"tutti-test-{period}-{os.getpid()}"
    with jack_server_process(name, period) as process:
        yield name, process
