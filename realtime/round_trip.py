"""Measuring the stream's round trip with a click through a JACK loopback.

Where the host is JACK, Tutti's own output port can be patched to its own input port: a click
played at a known output sample comes back a round trip later. During the ~0.3 s it takes, the
stream's ports are unplugged from the system's (so the player hears no click) and restored
afterwards. Elsewhere the device's reported latency stands in, and session.json says which.
"""

from __future__ import annotations

import subprocess

import numpy as np

CLICK_LEVEL = 0.5
DETECT_LEVEL = 0.25
LISTEN_S = 0.5


def jack_ports(server_env: dict | None = None) -> set[str]:
    """Every port of the running JACK server (empty when none answers)."""
    result = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10, env=server_env)
    return set(result.stdout.split()) if result.returncode == 0 else set()


def jack_connections(port: str) -> list[str]:
    """The ports connected to `port`."""
    result = subprocess.run(["jack_lsp", "-c", port], capture_output=True, text=True, timeout=10)
    lines = result.stdout.splitlines()
    return [line.strip() for line in lines[1:] if line.startswith((" ", "\t"))]


def _patch(command: str, source: str, destination: str) -> None:
    subprocess.run([command, source, destination], capture_output=True, timeout=10)


class ClickProbe:
    """Audio-thread side of the measurement: plays one click, listens for it. Preallocated."""

    def __init__(self, sample_rate_hz: int) -> None:
        self.captured = np.zeros(int(LISTEN_S * sample_rate_hz), dtype=np.float32)
        self.position = 0
        self.armed = False

    @property
    def done(self) -> bool:
        return self.position >= len(self.captured)

    def process(self, indata: np.ndarray, outdata: np.ndarray, frames: int) -> None:
        outdata.fill(0.0)
        if not self.armed:
            return
        if self.position == 0:
            outdata[0, :] = CLICK_LEVEL
        take = min(frames, len(self.captured) - self.position)
        self.captured[self.position:self.position + take] = indata[:take, 0]
        self.position += take

    def round_trip_samples(self) -> int | None:
        """Samples from the click's output to its arrival at the input, or None if it never came."""
        arrived = np.nonzero(np.abs(self.captured) >= DETECT_LEVEL)[0]
        return int(arrived[0]) if arrived.size else None


def measure_with_loopback(probe: ClickProbe, our_ports: set[str], wait) -> int | None:
    """Patch our first output to our first input, click, restore the patch; the round trip or None.

    `wait(condition)` blocks (without holding the audio thread) until `condition()` is true.
    """
    inputs = sorted(p for p in our_ports if ":in" in p)
    outputs = sorted(p for p in our_ports if ":out" in p)
    if not inputs or not outputs:
        return None
    saved = {port: jack_connections(port) for port in (*inputs, *outputs)}
    for port, peers in saved.items():
        for peer in peers:
            source, destination = (peer, port) if port in inputs else (port, peer)
            _patch("jack_disconnect", source, destination)
    _patch("jack_connect", outputs[0], inputs[0])
    try:
        probe.armed = True
        wait(lambda: probe.done)
    finally:
        probe.armed = False
        _patch("jack_disconnect", outputs[0], inputs[0])
        for port, peers in saved.items():
            for peer in peers:
                source, destination = (peer, port) if port in inputs else (port, peer)
                _patch("jack_connect", source, destination)
    return probe.round_trip_samples()
