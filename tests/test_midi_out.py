"""The followers' notes as MIDI: the part-frame-to-message core with numbers, the plan reading
against the voices' own PlanPart over a real control bus, and real rtmidi ports on the real
JACK server (dummy backend)."""

from __future__ import annotations

import statistics
import threading
import time
import uuid

import numpy as np
import pytest
import rtmidi

from engine.conductor.contract import HORIZON_FRAMES, LOOKAHEAD_FRAMES, PERIOD_FRAMES, ROLES
from engine.conductor.plans import midi_to_hz
from engine.conductor.task import TASK_NAME, role_part
from engine.config import load_config
from engine.errors import TuttiError
from engine.features.frames import N_FEATURES
from engine.parts import MAX_NOTES, PART_ACTIVE, PART_F0, PART_LOUDNESS, PART_ONSET, PART_ROWS, new_part_frame, plan_size
from engine.scheduling import FrameHistory, FrameScheduler
from realtime.midi_out import (
    ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_OFF, NOTE_ON, MidiPorts, NoteTracker, PlanMidiOut, open_plan_midi_out,
    part_frames_to_midi, pitch_of, role_channels, velocity_of,
)

JACK = rtmidi.API_UNIX_JACK
ON, OFF = NOTE_ON, NOTE_OFF


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _frame(*notes: tuple[float, float, float]) -> np.ndarray:
    """A part frame sounding (midi, loudness dB, onset) per slot."""
    part = new_part_frame()
    for k, (midi, loudness_db, onset) in enumerate(notes):
        part[PART_F0, k], part[PART_LOUDNESS, k] = midi_to_hz(midi), loudness_db
        part[PART_ONSET, k], part[PART_ACTIVE, k] = onset, 1.0
    return part


def test_pitch_and_velocity_mapping():
    assert [pitch_of(f) for f in (440.0, 261.6256, 55.0, 452.0, 1e6, 1.0)] == [69, 60, 33, 69, 127, 0]
    assert [velocity_of(db) for db in (-60.0, -6.0, -33.0, -100.0, 0.0, float("nan"))] == [1, 127, 64, 1, 127, 1]
    assert velocity_of(-45.0) == 36  # 1 + 126 * 15/54


def test_part_frames_become_note_changes_at_their_frames():
    frames = np.stack([
        _frame(),                                   # 0 silence
        _frame((45, -33.0, 1.0)),                   # 1 A2 struck
        _frame((45, -20.0, 0.0)),                   # 2 held: louder, but no new message
        _frame((45, -6.0, 1.0)),                    # 3 struck again: off, then on
        _frame((47, -6.0, 0.0)),                    # 4 new pitch without onset: A2 off, B2 on
        _frame(),                                   # 5 rest
        _frame((60, -45.0, 1.0), (64, -33.0, 1.0), (60, -20.0, 0.0)),  # 6 chord; C4 twice: once, louder
        _frame((60, -45.0, 0.0), (64, -33.0, 0.0)),  # 7 held
        _frame((60, -45.0, 0.0)),                   # 8 E4 leaves
        _frame((60, -45.0, 0.0), (0, -45.0, 1.0)),  # 9 a slot at f0 0 Hz is no note
    ])
    frames[9, PART_F0, 1] = 0.0
    frames[5, PART_ONSET, 0] = 1.0  # an onset in an inactive slot starts nothing
    assert part_frames_to_midi(frames, channel=2, first_frame=100) == [
        (101, [ON | 2, 45, 64]),
        (103, [OFF | 2, 45, 0]), (103, [ON | 2, 45, 127]),
        (104, [OFF | 2, 45, 0]), (104, [ON | 2, 47, 127]),
        (105, [OFF | 2, 47, 0]),
        (106, [ON | 2, 60, velocity_of(-20.0)]), (106, [ON | 2, 64, 64]),
        (108, [OFF | 2, 64, 0]),
    ]
    assert velocity_of(-20.0) == 94
    # The same frames on another channel differ only in the channel nibble.
    assert [m[0] & 0xF0 for _, m in part_frames_to_midi(frames, channel=9)] == [ON, OFF, ON, OFF, ON, OFF, ON, ON, OFF]


def test_release_silences_notes_until_they_are_struck_again():
    tracker = NoteTracker(channel=0)
    assert tracker.advance(_frame((40, -30.0, 1.0), (52, -30.0, 1.0))) == [[ON, 40, 71], [ON, 52, 71]]
    assert tracker.release() == [[OFF, 40, 0], [OFF, 52, 0]]
    assert tracker.advance(_frame((40, -30.0, 0.0), (52, -30.0, 0.0))) == []   # still held in the plan: silent
    assert tracker.advance(_frame((40, -30.0, 1.0), (55, -30.0, 0.0))) == [[ON, 40, 71], [ON, 55, 71]]
    assert tracker.advance(_frame((52, -30.0, 0.0))) == [[OFF, 40, 0], [OFF, 55, 0], [ON, 52, 71]]  # 52 left, returns
    with pytest.raises(ValueError, match="channel index 16"):
        NoteTracker(16)


def test_role_channels_skip_the_drum_channel():
    voices = [("bass", "bass"), ("organ", ""), ("pad", "harmony"), ("kit", "drums"), ("lead2", "counter")]
    assert role_channels(voices) == {"bass": 0, "pad": 1, "kit": 9, "lead2": 2}
    many = role_channels([(f"v{i}", "harmony") for i in range(15)])
    assert sorted(many.values()) == [c for c in range(16) if c != 9]
    with pytest.raises(TuttiError, match="voice v15: MIDI has 15 channels besides the drums"):
        role_channels([(f"v{i}", "harmony") for i in range(16)])


class ScriptedConductor:
    """A FrameTask with the conductor's name, timing and vector whose plans are a known function
    of the absolute frame and of the trigger (so neighbouring plans disagree, and the switch
    between them is visible in the notes)."""

    name = TASK_NAME
    period_frames = PERIOD_FRAMES
    lookahead_frames = LOOKAHEAD_FRAMES
    history_frames = 16
    result_size = len(ROLES) * plan_size(HORIZON_FRAMES)

    def compute(self, frames: np.ndarray, out: np.ndarray, trigger: int = 0) -> None:
        plans = out.reshape(len(ROLES), HORIZON_FRAMES, PART_ROWS, MAX_NOTES)
        plans[:] = 0.0
        for r in range(len(ROLES)):
            for i in range(HORIZON_FRAMES):
                a = trigger + LOOKAHEAD_FRAMES + i
                pitch = 36 if ROLES[r] == "drums" else 40 + 7 * r + (a // 25) % 4 + (trigger // PERIOD_FRAMES) % 2 * (r == 0)
                if ROLES[r] == "drums" and a % 25 > 2:
                    continue
                for k in range(2 if ROLES[r] == "harmony" else 1):
                    plans[r, i, :, k] = (midi_to_hz(pitch + 4 * k), -60.0 + a % 50, float(a % 25 == 0), 1.0)


def _bus_and_truth(skip_triggers: set[int], n_frames: int, poll_every: int, midi_out_factory):
    """Drive a real control bus frame by frame as the audio thread does, the test acting as the
    worker (it skips `skip_triggers`: deadline misses); returns each role's part frames as the
    voices' PlanPart read them, and what the MIDI out sent, polling every `poll_every` frames."""
    task = ScriptedConductor()
    history = FrameHistory()
    scheduler = FrameScheduler([task], history, synchronous=False)
    parts = [role_part(role) for role in ROLES]
    for part in parts:
        part.attach(scheduler.bus, scheduler.tasks)
    midi_out = midi_out_factory(scheduler, history.counter)
    truth = np.zeros((len(ROLES), n_frames + 1, PART_ROWS, MAX_NOTES))
    sent = []
    for count in range(1, n_frames + 1):
        history.append(np.zeros(N_FEATURES))
        scheduler.on_frame(count)
        for r, part in enumerate(parts):
            part.fill(np.zeros(N_FEATURES), count, truth[r, count])
        if count % PERIOD_FRAMES == 0 and count not in skip_triggers:
            scheduler.run(0, count)  # the worker answers before the plan is due
        if count % poll_every == 0:
            sent += midi_out.poll()
    sent += midi_out.poll()  # the frames since the last poll
    return truth, sent, scheduler.bus.deadline_misses


class Collected:
    """Ports that keep what they are sent."""

    def __init__(self) -> None:
        self.messages: list[list[int]] = []
        self.closed = False

    def send(self, message: list[int]) -> None:
        self.messages.append(list(message))

    def close(self) -> None:
        self.closed = True


CHANNELS = {"low": ("bass", 0), "tune": ("counter", 1), "pad": ("harmony", 2), "kit": ("drums", 9)}


@pytest.mark.parametrize("poll_every", [1, 3, 7])
def test_poll_sends_exactly_what_the_role_voices_play(poll_every):
    """Every frame's notes, across plan switches, missed deadlines (the old plan stays in force)
    and a gap past its horizon (silence), equal the notes of the part frames PlanPart gives the
    voices, whatever the poll's spacing."""
    ports = Collected()
    skip = {200, 210, 400, 410, 420, 430, 440}  # 2 misses within the horizon; 5 run past it
    n_frames = 600
    truth, sent, misses = _bus_and_truth(
        skip, n_frames, poll_every, lambda scheduler, counter: PlanMidiOut(scheduler, counter, CHANNELS, ports),
    )
    assert misses == len(skip)
    assert [m for _, m in sent] == ports.messages
    for role, channel in CHANNELS.values():
        expected = part_frames_to_midi(truth[ROLES.index(role), 1:], channel, first_frame=1)
        got = [(frame, m) for frame, m in sent if m[0] & 0x0F == channel]
        assert got == expected, role
    bass = part_frames_to_midi(truth[0, 1:], 0, first_frame=1)
    ons = [frame for frame, m in bass if m[0] & 0xF0 == ON]
    offs = [frame for frame, m in bass if m[0] & 0xF0 == OFF]
    # Triggers 400-440 never arrive: trigger 390's plan, in force from 395, runs out after 434;
    # the bass rests until trigger 450's plan comes into force at 455.
    assert truth[0, 434, PART_ACTIVE, 0] and not truth[0, 435:455, PART_ACTIVE].any()
    assert 435 in offs and 455 in ons and not any(435 < f < 455 for f in ons + offs)
    assert len(ons) > 40
    drum_ons = [(f, m) for f, m in sent if m[0] == ON | 9]
    assert drum_ons and all(m[1] == 36 and f % 25 == 0 for f, m in drum_ons)


def test_panic_and_close_turn_every_note_off():
    ports = Collected()
    holder = {}

    def factory(scheduler, counter):
        holder["out"] = PlanMidiOut(scheduler, counter, CHANNELS, ports)
        return holder["out"]

    _bus_and_truth(set(), 120, 1, factory)
    midi_out = holder["out"]
    before = len(ports.messages)
    midi_out.panic()
    panic = ports.messages[before:]
    offs = [m for m in panic if m[0] & 0xF0 == OFF]
    assert len(offs) == 4  # bass, counter, harmony's two notes; the drums rest at frame 120 (120 % 25 == 20)
    assert [m for m in panic if m[0] & 0xF0 == CONTROL_CHANGE] == [[CONTROL_CHANGE | c, ALL_NOTES_OFF, 0] for c in (0, 1, 2, 9)]
    midi_out.close()
    assert ports.closed
    midi_out.close()  # a second close does nothing


def test_no_midi_out_without_role_voices_or_outputs():
    scheduler = FrameScheduler([ScriptedConductor()], FrameHistory())
    counter = np.zeros(1, dtype=np.int64)
    assert open_plan_midi_out(load_config(), scheduler, counter) is None
    assert open_plan_midi_out(load_config(sets=['voices.bass.role="bass"', "conductor.midi_out=false"]),
                              scheduler, counter) is None


def _wait_for(condition, timeout_s: float = 2.0) -> None:
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout_s:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(0.001)


def _open_reader(name: str) -> rtmidi.MidiIn:
    """A MidiIn of another app connected to the output port `name`."""
    reader = rtmidi.MidiIn(JACK, name=_unique("treader"))
    _wait_for(lambda: name in reader.get_ports())
    reader.open_port(reader.get_ports().index(name))
    return reader


def test_virtual_port_round_trip_on_time(jack_server):
    """Real time: the engine's frame counter advances every 4 ms, the MIDI out polls on its own
    thread, another app reads the virtual port. It receives exactly the expected notes, each
    within a few ms of the moment its frame began."""
    client = _unique("tfollow")
    ports = MidiPorts(virtual=True, api=JACK, client_name=client)
    assert ports.names == [f"{client}:out"]
    reader = _open_reader(ports.names[0])
    task = ScriptedConductor()
    history = FrameHistory()
    scheduler = FrameScheduler([task], history, synchronous=False)
    parts = [role_part(role) for role in ROLES]
    for part in parts:
        part.attach(scheduler.bus, scheduler.tasks)
    midi_out = PlanMidiOut(scheduler, history.counter, CHANNELS, ports)
    n_frames = 375  # 1.5 s
    truth = np.zeros((len(ROLES), n_frames + 1, PART_ROWS, MAX_NOTES))
    frame_time = np.zeros(n_frames + 1)
    received: list[tuple[float, list[int]]] = []
    done = threading.Event()

    def engine() -> None:
        start = time.perf_counter()
        for count in range(1, n_frames + 1):
            while time.perf_counter() < start + count * 0.004:
                time.sleep(0.0005)
            history.append(np.zeros(N_FEATURES))
            scheduler.on_frame(count)
            for r, part in enumerate(parts):
                part.fill(np.zeros(N_FEATURES), count, truth[r, count])
            frame_time[count] = time.perf_counter()
            if count % PERIOD_FRAMES == 0:
                scheduler.run(0, count)
        done.set()

    def read_until(condition) -> None:  # noqa: ANN001
        while not condition():
            while (event := reader.get_message()) is not None:
                received.append((time.perf_counter(), event[0]))
            time.sleep(0.0005)

    midi_out.start()
    driver = threading.Thread(target=engine)
    driver.start()
    try:
        read_until(done.is_set)
        driver.join()
        settle = time.perf_counter() + 0.05
        read_until(lambda: time.perf_counter() > settle)  # the MIDI out's thread sends the last frames
        midi_out.close()
        settle = time.perf_counter() + 0.5
        read_until(lambda: time.perf_counter() > settle)
    finally:
        reader.delete()
        midi_out.close()

    expected = []
    for role, channel in CHANNELS.values():
        expected += part_frames_to_midi(truth[ROLES.index(role), 1:], channel, first_frame=1)
    expected.sort(key=lambda item: (item[0], item[1][0] & 0x0F))  # as sent: frame by frame, channel by channel
    notes = [(t, m) for t, m in received if m[0] & 0xF0 != CONTROL_CHANGE]
    n_expected = len(expected)
    assert n_expected > 100
    channels = (0, 1, 2, 9)
    sent = {c: [(t, m) for t, m in notes[:n_expected] if m[0] & 0x0F == c] for c in channels}
    planned = {c: [(f, m) for f, m in expected if m[0] & 0x0F == c] for c in channels}
    # each channel's messages in order (a poll that catches up sends its frames voice by voice)
    assert {c: [m for _, m in sent[c]] for c in channels} == {c: [m for _, m in planned[c]] for c in channels}
    # After the take: every note still sounding is turned off, then All Notes Off per channel.
    tail = [m for _, m in notes[n_expected:]]
    assert tail and all(m[0] & 0xF0 == OFF for m in tail)
    assert [m for _, m in received if m[0] & 0xF0 == CONTROL_CHANGE] == [[CONTROL_CHANGE | c, ALL_NOTES_OFF, 0] for c in (0, 1, 2, 9)]
    delays_ms = [1e3 * (t - frame_time[frame]) for c in channels for (t, _), (frame, _) in zip(sent[c], planned[c])]
    print(f"MIDI out: {n_expected} messages; delay after the frame began: median {statistics.median(delays_ms):.2f} ms, "
          f"p95 {np.percentile(delays_ms, 95):.2f} ms, max {max(delays_ms):.2f} ms")
    assert statistics.median(delays_ms) < 10.0



def test_named_output_port_and_a_missing_one(jack_server):
    """The port named by a substring of its name receives the notes; a name that matches none is
    one line naming the ports there are."""
    synth_client = _unique("tsynth")
    synth = rtmidi.MidiIn(JACK, name=synth_client)
    synth.open_virtual_port("in")
    target = f"{synth_client}:in"
    try:
        follow = _unique("tfollow")
        probe = rtmidi.MidiOut(JACK, name=_unique("tprobe"))
        _wait_for(lambda: target in probe.get_ports())
        probe.delete()
        ports = MidiPorts(virtual=False, port=synth_client[-8:].upper(), api=JACK, client_name=follow)
        assert ports.names == [target]
        ports.send([ON | 3, 62, 100])
        got = []
        _wait_for(lambda: (event := synth.get_message()) is not None and got.append(event[0]) is None)
        assert got == [[ON | 3, 62, 100]]
        ports.close()
        with pytest.raises(TuttiError) as missing:
            MidiPorts(virtual=True, port="no-such-port-xyz", api=JACK, client_name=follow)
        text = str(missing.value)
        assert text.startswith("[conductor] midi_out_port: MIDI port 'no-such-port-xyz' does not exist: available ports are")
        assert f"'{target}'" in text and "\n" not in text
    finally:
        synth.delete()


def test_config_opens_the_virtual_port_and_refuses_a_missing_named_one(jack_server):
    scheduler = FrameScheduler([ScriptedConductor()], FrameHistory())
    counter = np.zeros(1, dtype=np.int64)
    roles = ['voices.bass.role="bass"', 'voices.organ.role="drums"']
    midi_out = open_plan_midi_out(load_config(sets=roles), scheduler, counter, api=JACK)
    try:
        assert midi_out.ports.names == ["Tutti followers:out"]
        assert midi_out.channels == (0, 9)
    finally:
        midi_out.close()
    with pytest.raises(TuttiError, match=r"^\[conductor\] midi_out_port: MIDI port 'no-such-port-xyz' does not exist"):
        open_plan_midi_out(load_config(sets=[*roles, 'conductor.midi_out_port="no-such-port-xyz"']),
                           scheduler, counter, api=JACK)
