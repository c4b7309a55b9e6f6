"""Finding audio devices: the listing `devices` prints, and resolving a user's device choice."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import TuttiError

NO_DEVICE_HINT = (
    "connect a sound card, or start a JACK server (for instance `jackd -r -d dummy -r 48000 -p 128 &`)"
)


@dataclass(frozen=True)
class DuplexDevice:
    """A device with at least one input and one output channel."""

    index: int
    name: str
    host_api: str


def list_devices() -> str:
    """The device table as `python -m sounddevice` prints it, or a line saying there is none."""
    import sounddevice as sd

    devices = sd.query_devices()
    if len(devices) == 0:
        return f"no audio devices found: {NO_DEVICE_HINT}"
    return str(devices)


def duplex_devices() -> list[DuplexDevice]:
    """Every device that can both record and play."""
    import sounddevice as sd

    host_apis = sd.query_hostapis()
    return [
        DuplexDevice(index, info["name"], host_apis[info["hostapi"]]["name"])
        for index, info in enumerate(sd.query_devices())
        if info["max_input_channels"] >= 1 and info["max_output_channels"] >= 1
    ]


def resolve_device(choice: str | None) -> DuplexDevice:
    """The device a user named by index or case-insensitive name substring (None: the default)."""
    import sounddevice as sd

    devices = duplex_devices()
    listing = "; ".join(f"{d.index}: {d.name} ({d.host_api})" for d in devices) or "none"
    if choice is None:
        default_in, default_out = sd.default.device
        for device in devices:
            if device.index in (default_in, default_out):
                return device
        return devices[0]
    if choice.strip().isdigit():
        matches = [d for d in devices if d.index == int(choice)]
    else:
        words = choice.lower().split()
        matches = [d for d in devices if all(w in f"{d.name} {d.host_api}".lower() for w in words)]
    if not matches:
        raise TuttiError(f"audio device {choice!r} does not exist: devices with input and output are {listing}")
    if len(matches) > 1:
        names = "; ".join(f"{d.index}: {d.name}" for d in matches)
        raise TuttiError(f"audio device {choice!r} is ambiguous: it matches {names}; give the index")
    return matches[0]
