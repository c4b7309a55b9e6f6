"""Listing the audio devices PortAudio sees, in sounddevice's `-l` format."""

from __future__ import annotations


def list_devices() -> str:
    """The device table as `python -m sounddevice` prints it, or a line saying there is none."""
    import sounddevice as sd

    devices = sd.query_devices()
    if len(devices) == 0:
        return (
            "no audio devices found: connect a sound card, or start a JACK server "
            "(for instance `jackd -r -d dummy -r 48000 -p 128 &`)"
        )
    return str(devices)
