"""MIDI control through real rtmidi ports on the real JACK server (dummy backend): no mocks."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import rtmidi

from engine.errors import TuttiError
from engine.parameters import LiveParameters
from realtime.midi import MidiBinding, MidiController, list_input_ports

JACK = rtmidi.API_UNIX_JACK


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _wait_for(condition: Callable[[], object], timeout_s: float = 1.0) -> float:
    """Poll `condition` until true; returns the seconds it took, fails after `timeout_s`."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout_s:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(0.001)
    return time.perf_counter() - start


class Sender:
    """Another app's MIDI output: a virtual JACK port with a unique client name."""

    def __init__(self, client: str, port: str = "knobs") -> None:
        self.client, self.port = client, port
        self.name = f"{client}:{port}"
        self.out = rtmidi.MidiOut(JACK, name=client)
        self.out.open_virtual_port(port)

    def send(self, *message: int) -> None:
        self.out.send_message(list(message))

    def close(self) -> None:
        self.out.close_port()
        self.out.delete()


@pytest.fixture
def sender(jack_server) -> Iterator[Sender]:
    sender = Sender(_unique("tsend"))
    yield sender
    sender.close()


@pytest.fixture
def probe(jack_server) -> Iterator[rtmidi.MidiIn]:
    """One JACK client that lists ports for a whole test: polling with a new client per look
    (hundreds a second) wedged the JACK server on a loaded machine."""
    client = rtmidi.MidiIn(JACK, name=_unique("tprobe"))
    yield client
    client.delete()


@pytest.fixture
def parameters() -> LiveParameters:
    return LiveParameters(("bass", "organ"), np.zeros((2, 4)), np.array([1.0, 0.0]))


@pytest.fixture
def controller(jack_server, parameters) -> Iterator[MidiController]:
    with MidiController(parameters, api=JACK, client_name=_unique("tutti")) as controller:
        yield controller


def _connect(controller: MidiController, sender: Sender) -> str:
    """Connect by a substring of the sender's name once JACK lists its port."""
    _wait_for(lambda: sender.name in controller.available_ports())
    port = controller.connect(sender.client[-8:].upper())
    assert port == sender.name
    return port


def test_cc_moves_gain_with_low_latency(controller, sender, parameters):
    port = _connect(controller, sender)
    controller.bind(MidiBinding(port, "cc", 0, 7, "voices.bass.gain_db"))
    parameters.set_value("voices.bass.gain_db", -6.0)

    latencies = []
    for value in [100, *range(20, 120, 5)]:
        before = parameters.value("voices.bass.gain_db")
        sent = time.perf_counter()
        sender.send(0xB0, 7, value)
        _wait_for(lambda: parameters.value("voices.bass.gain_db") != before)
        latencies.append(time.perf_counter() - sent)
        assert parameters.value("voices.bass.gain_db") == pytest.approx(-60.0 + 72.0 * value / 127)
    print(
        f"CC delivery latency over {len(latencies)} messages: median "
        f"{1e3 * statistics.median(latencies):.2f} ms, max {1e3 * max(latencies):.2f} ms"
    )
    assert statistics.median(latencies) < 0.02
    entry = controller.log[-1]
    assert (entry.port, entry.message, entry.parameter) == (port, (0xB0, 7, 115), "voices.bass.gain_db")
    # Other channels, controllers and message types move nothing.
    sender.send(0xB1, 7, 0)
    sender.send(0xB0, 8, 0)
    sender.send(0xE0, 0, 64)
    _wait_for(lambda: len(controller.log) >= len(latencies) + 3)
    assert parameters.value("voices.bass.gain_db") == pytest.approx(-60.0 + 72.0 * 115 / 127)
    assert [entry.parameter for entry in list(controller.log)[-3:]] == [None, None, None]


def test_midi_learn_binds_the_next_control(controller, sender, parameters):
    port = _connect(controller, sender)
    controller.arm("voices.bass.pan")
    assert controller.armed == "voices.bass.pan"
    sender.send(0xB3, 74, 10)
    _wait_for(lambda: controller.bindings)
    assert controller.bindings == (MidiBinding(port, "cc", 3, 74, "voices.bass.pan"),)
    assert controller.armed is None
    assert parameters.value("voices.bass.pan") == 0.0  # the learning move binds, it does not set
    assert "voices.bass.pan" in controller.events[-1]

    sender.send(0xB3, 74, 127)
    _wait_for(lambda: parameters.value("voices.bass.pan") == 1.0)

    # Learning the same knob for another parameter replaces its binding.
    controller.arm("voices.organ.pan")
    sender.send(0xB3, 74, 64)
    _wait_for(lambda: controller.armed is None)
    assert controller.bindings == (MidiBinding(port, "cc", 3, 74, "voices.organ.pan"),)
    sender.send(0xB3, 74, 0)
    _wait_for(lambda: parameters.value("voices.organ.pan") == -1.0)
    assert parameters.value("voices.bass.pan") == 1.0

    controller.arm("voices.bass.solo")
    controller.disarm()
    with pytest.raises(TuttiError, match="unknown parameter voices.cello.pan"):
        controller.arm("voices.cello.pan")


def test_notes_toggle_switches_set_continuous_parameters_and_panic(controller, sender, parameters):
    port = _connect(controller, sender)
    controller.bind(MidiBinding(port, "note", 0, 60, "voices.organ.mute"))
    controller.bind(MidiBinding(port, "note", 0, 61, "voices.bass.pan"))
    controller.bind(MidiBinding(port, "cc", 15, 120, "panic"))
    panics = []
    controller.on_panic = lambda: panics.append(time.perf_counter())

    sender.send(0x90, 60, 100)
    _wait_for(lambda: parameters.value("voices.organ.mute") == 1.0)
    sender.send(0x80, 60, 0)  # note-off and note-on velocity 0 do not toggle back
    sender.send(0x90, 60, 0)
    sender.send(0x90, 61, 127)
    _wait_for(lambda: parameters.value("voices.bass.pan") == 1.0)
    assert parameters.value("voices.organ.mute") == 1.0
    sender.send(0x90, 60, 1)
    _wait_for(lambda: parameters.value("voices.organ.mute") == 0.0)

    sender.send(0xBF, 120, 0)  # a button's release does not fire
    sender.send(0xBF, 120, 127)
    _wait_for(lambda: panics)
    assert len(panics) == 1
    assert [entry.parameter for entry in controller.log][-2:] == ["panic", "panic"]


def test_bindings_round_trip_and_reject_bad_values():
    bindings = [
        MidiBinding("nanoKONTROL2:out", "cc", 3, 74, "voices.bass.pan"),
        MidiBinding("keys:out", "note", 0, 60, "panic"),
    ]
    assert [MidiBinding.from_dict(binding.to_dict()) for binding in bindings] == bindings
    assert bindings[0].to_dict() == {
        "port": "nanoKONTROL2:out", "kind": "cc", "channel": 3, "number": 74, "parameter": "voices.bass.pan",
    }
    with pytest.raises(TuttiError, match="channel 16 is out of range"):
        MidiBinding.from_dict({**bindings[0].to_dict(), "channel": 16})
    with pytest.raises(TuttiError, match="kind 'pitchbend' is unknown"):
        MidiBinding.from_dict({**bindings[0].to_dict(), "kind": "pitchbend"})
    with pytest.raises(TuttiError, match="lacks 'number'"):
        MidiBinding.from_dict({"port": "a", "kind": "cc", "channel": 0, "parameter": "panic"})
    with pytest.raises(TuttiError, match="must be integers"):
        MidiBinding.from_dict({**bindings[0].to_dict(), "number": "seven"})


def test_missing_and_ambiguous_ports_name_the_candidates(controller, sender, parameters):
    _wait_for(lambda: sender.name in controller.available_ports())
    assert sender.name in list_input_ports(JACK)  # the one-shot listing `devices` prints
    with pytest.raises(TuttiError) as missing:
        controller.connect("no-such-port-xyz")
    assert "MIDI port 'no-such-port-xyz' does not exist: available ports are" in str(missing.value)
    assert f"'{sender.name}'" in str(missing.value)

    twin = Sender(sender.client + "-twin")
    try:
        _wait_for(lambda: twin.name in controller.available_ports())
        with pytest.raises(TuttiError, match="is ambiguous") as ambiguous:
            controller.connect(sender.client)
        assert f"'{sender.name}'" in str(ambiguous.value) and f"'{twin.name}'" in str(ambiguous.value)
        assert controller.connect(sender.name.upper()) == sender.name  # an exact name wins
    finally:
        twin.close()
    with pytest.raises(TuttiError, match="unknown parameter"):
        controller.bind(MidiBinding(sender.name, "cc", 0, 1, "voices.cello.gain_db"))


def test_vanished_port_is_reported_and_rebound(jack_server, parameters, probe):
    client = _unique("tsend")
    sender = Sender(client)
    _wait_for(lambda: sender.name in probe.get_ports())
    binding = MidiBinding(sender.name, "cc", 0, 1, "voices.organ.gain_db")
    with MidiController(parameters, [binding], api=JACK, client_name=_unique("tutti")) as controller:
        controller.start_watch(interval_s=0.02)
        sender.send(0xB0, 1, 127)
        _wait_for(lambda: parameters.value("voices.organ.gain_db") == 12.0)

        sender.close()
        _wait_for(lambda: any("disappeared" in event for event in controller.events))
        assert controller.events[-1] == f"MIDI port '{sender.name}' disappeared; will re-bind when it returns"

        sender = Sender(client)
        _wait_for(lambda: controller.events[-1] == f"MIDI port '{sender.name}' is back")
        sender.send(0xB0, 1, 0)
        _wait_for(lambda: parameters.value("voices.organ.gain_db") == -60.0)
        assert controller.bindings == (binding,)
    sender.close()


def test_binding_for_an_absent_port_binds_when_it_appears(jack_server, parameters):
    client = _unique("tsend")
    binding = MidiBinding(f"{client}:knobs", "cc", 2, 10, "voices.bass.pan")
    with MidiController(parameters, [binding], api=JACK, client_name=_unique("tutti")) as controller:
        assert list(controller.events) == [
            f"MIDI port '{client}:knobs' is not available; will bind when it appears"
        ]
        controller.start_watch(interval_s=0.02)
        sender = Sender(client)
        try:
            _wait_for(lambda: controller.events[-1] == f"MIDI port '{sender.name}' appeared")
            sender.send(0xB2, 10, 127)
            _wait_for(lambda: parameters.value("voices.bass.pan") == 1.0)
        finally:
            sender.close()


def test_virtual_input_port_receives_from_other_apps(controller, parameters):
    port = controller.open_virtual("control_in")
    controller.bind(MidiBinding(port, "cc", 0, 11, "mixer.master_gain_db"))
    other_app = rtmidi.MidiOut(JACK, name=_unique("tapp"))
    try:
        _wait_for(lambda: port in other_app.get_ports())
        other_app.open_port(other_app.get_ports().index(port))
        other_app.send_message([0xB0, 11, 0])
        _wait_for(lambda: parameters.value("mixer.master_gain_db") == -60.0)
        assert controller.log[-1].port == port
    finally:
        other_app.close_port()
        other_app.delete()


def test_no_jack_server_is_a_user_error(jack_server, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", _unique("no-such-server"))
    with pytest.raises(TuttiError, match="JACK server"):
        list_input_ports(JACK)


def test_ports_open_and_close_under_heavy_traffic(jack_server, sender, parameters, probe):
    """Opening and closing ports while messages flow must neither crash nor hang (it did both
    with rtmidi callbacks on the JACK thread, which is why the controller polls)."""
    _wait_for(lambda: sender.name in probe.get_ports())
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            sender.send(0xB0, 7, 64)
            time.sleep(0.0005)

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        binding = MidiBinding(sender.name, "cc", 0, 7, "voices.bass.gain_db")
        for _ in range(15):
            parameters.set_value("voices.bass.gain_db", -6.0)
            with MidiController(parameters, [binding], api=JACK, client_name=_unique("tutti")):
                _wait_for(lambda: parameters.value("voices.bass.gain_db") != -6.0)
    finally:
        stop.set()
        streamer.join()
