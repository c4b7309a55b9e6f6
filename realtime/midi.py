"""MIDI control of the live parameters: ports by stable name, MIDI learn, vanishing devices.

A knob or key bound to a parameter name moves it at once (`LiveParameters` publishes plain
floats, last write wins, as in rtmidi's `ccstore` example). Bindings name ports by their full
name string, never by index, so a config or session file still means the same device tomorrow.

One reader thread polls rtmidi's input queues every `read_interval_s` instead of using rtmidi
callbacks: with JACK a Python callback runs on the JACK process thread and needs the GIL there,
and opening or closing ports while messages flowed then crashed the process (3 of 3 stress
runs with callbacks segfaulted or hung, 0 of 6 with polling). Polling adds at most one
interval (5 ms: the control process's threads wake at most 200 times a second) of latency.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import rtmidi

from engine.config.schema import Control, MidiBinding
from engine.errors import TuttiError
from engine.parameters import LiveParameters

DEFAULT_API = rtmidi.API_UNIX_JACK if sys.platform.startswith("linux") else rtmidi.API_UNSPECIFIED
PANIC = "panic"  # a binding target that calls `MidiController.on_panic`
_CONTROL_CHANGE, _NOTE_ON = 0xB0, 0x90


def new_midi_client(api: int, client_name: str, output: bool = False) -> rtmidi.MidiIn | rtmidi.MidiOut:
    """A MidiIn (or, with `output`, a MidiOut) client, or a TuttiError saying how to get a MIDI
    system running."""
    try:
        return (rtmidi.MidiOut if output else rtmidi.MidiIn)(api, name=client_name)
    except rtmidi.RtMidiError as exc:
        remedy = (
            "start a JACK server (for instance `jackd -r -d dummy -r 48000 -p 128 &`)"
            if api == rtmidi.API_UNIX_JACK
            else "check that the MIDI system is running"
        )
        raise TuttiError(
            f"cannot open MIDI {'output' if output else 'input'} ({rtmidi.get_api_display_name(api)}): {exc}: {remedy}"
        ) from None


def list_input_ports(api: int = DEFAULT_API) -> list[str]:
    """The names of the MIDI ports Tutti can read from, as bindings name them."""
    probe = new_midi_client(api, "tutti-list")
    try:
        return probe.get_ports()
    finally:
        probe.delete()


def list_midi_inputs(api: int = DEFAULT_API) -> str:
    """A line for `launch.py devices`: the MIDI inputs `--midi` and bindings can name."""
    try:
        ports = list_input_ports(api)
    except TuttiError as err:
        return f"MIDI inputs: none ({err})"
    return "MIDI inputs: " + _listing(ports)


def _listing(ports: Iterable[str]) -> str:
    names = ", ".join(f"'{port}'" for port in ports)
    return names or "none (no MIDI device or MIDI app is running)"


def resolve_port(substring: str, available: list[str]) -> str:
    """The one port whose name contains `substring` (case-insensitive; an exact name wins)."""
    lowered = substring.lower()
    exact = [port for port in available if port.lower() == lowered]
    if exact:
        return exact[0]
    matches = [port for port in available if lowered in port.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise TuttiError(
            f"MIDI port '{substring}' does not exist: available ports are {_listing(available)}; "
            "connect the device or name one of these"
        )
    raise TuttiError(
        f"MIDI port '{substring}' is ambiguous: it matches {_listing(matches)}; give more of the name"
    )


@dataclass(frozen=True)
class MidiLogEntry:
    """One received message for the session's MIDI/control log (parameter None when unbound)."""

    time_s: float  # time.monotonic() when read
    port: str
    message: tuple[int, ...]
    parameter: str | None


def _parse(message: list[int]) -> tuple[str, int, int, int] | None:
    """(kind, channel, number, value) of a CC or a note-on with velocity > 0, else None.

    Data bytes must be 0..127: a corrupt message (a data byte with the top bit set) is ignored,
    never learnt as a control number the config would refuse.
    """
    if len(message) != 3:
        return None
    status, number, value = message[0], message[1], message[2]
    if not (0 <= number <= 0x7F and 0 <= value <= 0x7F):
        return None
    if status & 0xF0 == _CONTROL_CHANGE:
        return ("cc", status & 0x0F, number, value)
    if status & 0xF0 == _NOTE_ON and value > 0:
        return ("note", status & 0x0F, number, value)
    return None


class MidiController:
    """Reads MIDI ports, applies bound controls to `parameters`, learns bindings, and re-binds
    devices that vanish and return (with `start_watch`)."""

    def __init__(
        self,
        parameters: LiveParameters,
        bindings: Iterable[MidiBinding] = (),
        api: int = DEFAULT_API,
        client_name: str = "tutti",
        *,
        read_interval_s: float = 0.005,
        log_size: int = 10_000,
    ) -> None:
        self._parameters = parameters
        self._api = api
        self._client_name = client_name
        self._read_interval_s = read_interval_s
        self.on_panic: Callable[[], None] | None = None
        self.log: deque[MidiLogEntry] = deque(maxlen=log_size)
        self.events: deque[str] = deque(maxlen=1000)  # one-line reports: ports lost/back, learn
        # Bindings: a dict swapped by reference (the reader never locks); writers hold the lock.
        self._routes: dict[Control, str] = {}
        self._armed: str | None = None
        self._bindings_lock = threading.Lock()
        # Ports: every rtmidi call happens under this lock.
        self._ports_lock = threading.Lock()
        self._inputs: dict[str, rtmidi.MidiIn] = {}  # stable name -> its own MidiIn client
        self._listening: set[str] = set()  # names whose port is open now
        self._connected: set[str] = set()  # opened by `connect`, kept even when unbound
        self._missing: set[str] = set()  # reported as unavailable
        self._seen: set[str] = set()  # opened at least once
        for binding in bindings:
            self.bind(binding)
        self._probe = new_midi_client(api, f"{client_name}-probe")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.poll_ports()
        self._reader = threading.Thread(target=self._read_loop, name="tutti-midi-read", daemon=True)
        self._reader.start()

    # Bindings and MIDI learn

    @property
    def bindings(self) -> tuple[MidiBinding, ...]:
        return tuple(MidiBinding(*control, parameter) for control, parameter in self._routes.items())

    @property
    def armed(self) -> str | None:
        """The parameter waiting for MIDI learn, if any."""
        return self._armed

    def _check_parameter(self, name: str) -> None:
        if name != PANIC:
            self._parameters.spec(name)  # raises a TuttiError listing the known names

    def bind(self, binding: MidiBinding) -> None:
        """Bind a control, replacing whatever that control was bound to; its port is opened
        by the next `poll_ports` if it is available."""
        self._check_parameter(binding.parameter)
        with self._bindings_lock:
            self._bind_locked(binding)

    def _bind_locked(self, binding: MidiBinding) -> None:
        routes = dict(self._routes)
        routes[binding.control] = binding.parameter
        self._routes = routes

    def arm(self, parameter: str) -> None:
        """MIDI learn: the next CC or note-on from any open port is bound to `parameter`."""
        self._check_parameter(parameter)
        with self._bindings_lock:
            self._armed = parameter

    def disarm(self) -> None:
        with self._bindings_lock:
            self._armed = None

    def _learn(self, control: Control) -> str | None:
        """Bind `control` to the armed parameter; None when nothing is armed."""
        if self._armed is None:
            return None
        with self._bindings_lock:
            parameter, self._armed = self._armed, None
            if parameter is None:
                return None
            self._bind_locked(MidiBinding(*control, parameter))
        port, kind, channel, number = control
        self.events.append(f"MIDI learn: {kind} {number} channel {channel} of '{port}' -> {parameter}")
        return parameter

    # Ports

    def _is_own(self, port: str) -> bool:
        """A virtual input of this controller (other apps connect to it, it never vanishes)."""
        return port.startswith(f"{self._client_name}:")

    def _wanted(self) -> set[str]:
        return {port for port, _, _, _ in self._routes if not self._is_own(port)} | self._connected

    def _open_port(self, name: str) -> bool:
        """Open the port called `name` on its own MidiIn; False if it is not there (now)."""
        midi_in = self._inputs.get(name)
        if midi_in is None:
            midi_in = self._inputs[name] = new_midi_client(self._api, f"{self._client_name}-in")
        ports = midi_in.get_ports()
        if name not in ports:
            return False
        try:
            midi_in.open_port(ports.index(name), name="midi_in")
        except rtmidi.RtMidiError:  # vanished between listing and opening: the next poll retries
            return False
        self._listening.add(name)
        self._seen.add(name)
        self._missing.discard(name)
        return True

    def connect(self, port_substring: str) -> str:
        """Open the port whose name contains `port_substring`; returns its stable name."""
        with self._ports_lock:
            name = resolve_port(port_substring, self._probe.get_ports())
            self._connected.add(name)
            if name not in self._listening and not self._open_port(name):
                raise TuttiError(f"MIDI port '{name}' vanished while opening: reconnect it and try again")
        return name

    def open_virtual(self, port_name: str = "midi_in") -> str:
        """Open a virtual input other apps can connect to; returns its stable name
        "<client_name>:<port_name>" (JACK appends "-01" to the client if that name is taken)."""
        name = f"{self._client_name}:{port_name}"
        with self._ports_lock:
            if name not in self._inputs:
                midi_in = new_midi_client(self._api, self._client_name)
                midi_in.open_virtual_port(port_name)
                self._inputs[name] = midi_in
                self._listening.add(name)
        return name

    def available_ports(self) -> list[str]:
        """The MIDI input ports the system lists now (through this controller's own probe client,
        so polling does not create and destroy JACK clients)."""
        with self._ports_lock:
            return self._probe.get_ports()

    def poll_ports(self) -> None:
        """Close bound or connected ports that disappeared and re-open those that returned,
        reporting each change in `events`."""
        with self._ports_lock:
            available = set(self._probe.get_ports())
            for name in sorted(self._wanted()):
                if name in self._listening and name not in available:
                    self._inputs[name].close_port()
                    self._listening.discard(name)
                    self._missing.add(name)
                    self.events.append(f"MIDI port '{name}' disappeared; will re-bind when it returns")
                elif name not in self._listening and name in available:
                    reported, returning = name in self._missing, name in self._seen
                    if self._open_port(name) and reported:
                        self.events.append(f"MIDI port '{name}' {'is back' if returning else 'appeared'}")
                elif name not in self._listening and name not in self._missing:
                    self._missing.add(name)
                    self.events.append(f"MIDI port '{name}' is not available; will bind when it appears")

    def start_watch(self, interval_s: float = 0.5) -> None:
        """Run `poll_ports` every `interval_s` on a background thread until `close`."""
        if self._watcher is not None:
            return
        self._watcher = threading.Thread(
            target=self._watch_loop, args=(interval_s,), name="tutti-midi-watch", daemon=True
        )
        self._watcher.start()

    def _watch_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.poll_ports()
            except rtmidi.RtMidiError as exc:
                self.events.append(f"MIDI port watch failed: {exc}; retrying")

    # Messages

    def _read_loop(self) -> None:
        while not self._stop.wait(self._read_interval_s):
            pending: list[tuple[str, list[int]]] = []
            with self._ports_lock:
                for name in self._listening:
                    while (event := self._inputs[name].get_message()) is not None:
                        pending.append((name, event[0]))
            now = time.monotonic()
            for port, message in pending:
                self._handle(port, message, now)

    def _handle(self, port: str, message: list[int], time_s: float) -> None:
        parsed = _parse(message)
        parameter = None
        if parsed is not None:
            kind, channel, number, value = parsed
            control = (port, kind, channel, number)
            parameter = self._learn(control)
            if parameter is None:
                parameter = self._routes.get(control)
                if parameter is not None:
                    self._apply(parameter, kind, value)
        self.log.append(MidiLogEntry(time_s, port, tuple(message), parameter))

    def _apply(self, parameter: str, kind: str, value: int) -> None:
        """CC: value/127 across the range. Note-on: toggles a switch, else velocity/127.
        PANIC fires on a note-on or a CC of 64 and above (a button's press, not its release)."""
        if parameter == PANIC:
            if self.on_panic is not None and (kind == "note" or value >= 64):
                try:
                    self.on_panic()
                except Exception as exc:  # the reader thread must survive a faulty handler
                    self.events.append(f"panic handler failed: {exc!r}")
        elif kind == "note" and self._parameters.spec(parameter).unit == "switch":
            self._parameters.set_value(parameter, 0.0 if self._parameters.value(parameter) >= 0.5 else 1.0)
        else:
            self._parameters.set_normalized(parameter, value / 127.0)

    # Lifetime

    def close(self) -> None:
        """Stop the threads and close every port and MIDI client; a second call does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._reader.join()
        if self._watcher is not None:
            self._watcher.join()
        with self._ports_lock:
            for name, midi_in in self._inputs.items():
                if name in self._listening:
                    midi_in.close_port()
                midi_in.delete()
            self._inputs.clear()
            self._listening.clear()
            self._probe.delete()

    def __enter__(self) -> MidiController:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
