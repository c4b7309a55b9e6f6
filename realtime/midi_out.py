"""The followers' notes as MIDI: what each role voice plays from the conductor's plans, on a
virtual output port and on any output port named, so an external synth or a DAW plays along.

`PlanMidiOut` runs on its own thread in the control process. Every POLL_S it reads the engine's
frame counter and the plan in force for the conductor on the control bus (read-only, never
written), works out each role voice's part frame for every frame that has begun since its last
look, exactly as the voice's `PlanPart` does (engine/parts.py), and sends the note changes at
once: frame n's notes go out when the counter reaches n, the moment the voice starts to play
them, at most one poll later. `NoteTracker` (part frames in, MIDI messages out) is the pure core.

Notes: one per distinct MIDI pitch of a part frame's active slots. A note starts where a pitch
appears or where its slot has an onset (a repeated note: off, then on), and stops where its
pitch leaves the frame. Velocity maps PART_LOUDNESS linearly from VELOCITY_RANGE_DB to 1..127.
Each role voice has its own channel (0, 1, ... skipping 9); drums play on channel 10 (index 9).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable

import numpy as np
import rtmidi

from engine.conductor.contract import HORIZON_FRAMES, ROLES
from engine.conductor.task import TASK_NAME
from engine.config import TuttiConfig
from engine.errors import TuttiError
from engine.parts import MAX_NOTES, PART_ACTIVE, PART_F0, PART_LOUDNESS, PART_ONSET, PART_ROWS, plan_size
from engine.scheduling import ACTIVE_ROW, FrameScheduler
from realtime.midi import DEFAULT_API, new_midi_client, resolve_port

POLL_S = 0.002                       # 2 ms: half a frame, so a note is sent within ~one frame of its start
VIRTUAL_CLIENT, VIRTUAL_PORT = "Tutti followers", "out"
VELOCITY_RANGE_DB = (-60.0, -6.0)    # loudness mapped to velocity 1..127
DRUM_CHANNEL = 9                     # General MIDI percussion: channel 10
NOTE_ON, NOTE_OFF, CONTROL_CHANGE = 0x90, 0x80, 0xB0
ALL_NOTES_OFF, ALL_SOUND_OFF = 123, 120

Message = list[int]


def pitch_of(f0_hz: float) -> int:
    """The nearest MIDI note to `f0_hz` (Hz > 0), within 0..127."""
    return int(np.clip(np.rint(69.0 + 12.0 * np.log2(f0_hz / 440.0)), 0, 127))


def velocity_of(loudness_db: float) -> int:
    """PART_LOUDNESS (dB) to a note-on velocity: VELOCITY_RANGE_DB linearly onto 1..127."""
    low, high = VELOCITY_RANGE_DB
    share = (np.nan_to_num(loudness_db, nan=low) - low) / (high - low)
    return int(np.rint(1.0 + 126.0 * np.clip(share, 0.0, 1.0)))


class NoteTracker:
    """The notes one channel sounds; `advance` turns the next part frame into note changes."""

    def __init__(self, channel: int) -> None:
        if not 0 <= channel <= 15:
            raise ValueError(f"MIDI channel index {channel} is out of range 0..15")
        self.channel = channel
        self.sounding: set[int] = set()
        self._silenced: set[int] = set()  # pitches stopped by `release` that keep silent until struck again

    def advance(self, part: np.ndarray) -> list[Message]:
        """Note-offs, then note-ons, that take the channel from the previous part frame to
        `part` [PART_ROWS, MAX_NOTES]."""
        notes: dict[int, tuple[int, bool]] = {}  # pitch -> (velocity, struck this frame)
        for k in range(part.shape[1]):
            if part[PART_ACTIVE, k] > 0.0 and part[PART_F0, k] > 0.0:
                pitch = pitch_of(part[PART_F0, k])
                velocity, struck = notes.get(pitch, (0, False))
                notes[pitch] = (max(velocity, velocity_of(part[PART_LOUDNESS, k])), struck or part[PART_ONSET, k] > 0.0)
        self._silenced = {p for p in self._silenced if p in notes and not notes[p][1]}
        audible = {p: note for p, note in notes.items() if p not in self._silenced}
        stops = sorted(p for p in self.sounding if p not in audible or audible[p][1])
        starts = sorted(p for p in audible if p not in self.sounding or audible[p][1])
        self.sounding = set(audible)
        return ([[NOTE_OFF | self.channel, p, 0] for p in stops]
                + [[NOTE_ON | self.channel, p, audible[p][0]] for p in starts])

    def release(self) -> list[Message]:
        """Note-offs for everything sounding; those notes stay silent until struck anew."""
        stops = [[NOTE_OFF | self.channel, p, 0] for p in sorted(self.sounding)]
        self._silenced |= self.sounding
        self.sounding = set()
        return stops


def part_frames_to_midi(part_frames: np.ndarray, channel: int, first_frame: int = 0) -> list[tuple[int, Message]]:
    """(frame number, message) of every note change over part frames [n, PART_ROWS, MAX_NOTES]
    (the first one numbered `first_frame`), from silence, ending with what sounds at the last."""
    tracker = NoteTracker(channel)
    return [(first_frame + i, message) for i, part in enumerate(part_frames) for message in tracker.advance(part)]


def role_channels(voices: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Voice name -> MIDI channel index for the (name, role) pairs with a role, in order:
    0, 1, ... skipping 9 for the melodic roles, 9 for drums."""
    channels, free = {}, [c for c in range(16) if c != DRUM_CHANNEL]
    for name, role in voices:
        if not role:
            continue
        if role == "drums":
            channels[name] = DRUM_CHANNEL
        elif free:
            channels[name] = free.pop(0)
        else:
            raise TuttiError(f"voice {name}: MIDI has 15 channels besides the drums, one per melodic role voice: "
                             "give fewer voices a role, or set [conductor] midi_out = false and midi_out_port = \"\"")
    return channels


class MidiPorts:
    """Where the notes go: a virtual output port others connect to, and/or the output port whose
    name contains `port` (a TuttiError naming the available ones if there is none)."""

    def __init__(self, virtual: bool, port: str = "", api: int = DEFAULT_API,
                 client_name: str = VIRTUAL_CLIENT) -> None:
        self.names: list[str] = []
        self._outputs: list[rtmidi.MidiOut] = []
        try:
            if virtual:
                output = self._new(api, client_name)
                output.open_virtual_port(VIRTUAL_PORT)
                self.names.append(f"{client_name}:{VIRTUAL_PORT}")
            if port:
                output = self._new(api, f"{client_name}-to-port")
                available = output.get_ports()
                try:
                    name = resolve_port(port, available)
                except TuttiError as err:
                    raise TuttiError(f"[conductor] midi_out_port: {err} (as an output)") from None
                output.open_port(available.index(name), name=VIRTUAL_PORT)
                self.names.append(name)
        except BaseException:
            self.close()
            raise

    def _new(self, api: int, client_name: str) -> rtmidi.MidiOut:
        output = new_midi_client(api, client_name, output=True)
        self._outputs.append(output)
        return output

    def send(self, message: Message) -> None:
        for output in self._outputs:
            output.send_message(message)

    def close(self) -> None:
        for output in self._outputs:
            output.close_port()
            output.delete()
        self._outputs.clear()


class PlanMidiOut:
    """Sends the notes of the role voices `channels` (voice name -> (role, channel)) to `ports`
    (anything with `send(message)` and `close()`: MidiPorts live) as the engine reaches them,
    reading the frame `counter` [1] and the conductor's plans on `scheduler.bus`."""

    def __init__(self, scheduler: FrameScheduler, counter: np.ndarray, channels: dict[str, tuple[str, int]],
                 ports: MidiPorts) -> None:
        names = [task.name for task in scheduler.tasks]
        if TASK_NAME not in names:
            raise ValueError(f"no {TASK_NAME} task on the bus: tasks are {names}")
        self._task = names.index(TASK_NAME)
        self._bus = scheduler.bus
        self._lookahead = scheduler.tasks[self._task].lookahead_frames
        self._counter = counter
        self.ports = ports
        self._send = ports.send
        self._size = len(ROLES) * plan_size(HORIZON_FRAMES)
        # One stream per channel (voices sharing the drum channel play the same plan once).
        streams = {channel: role for role, channel in channels.values()}
        self._streams = [(ROLES.index(role), NoteTracker(channel)) for channel, role in sorted(streams.items())]
        self._plans: list[tuple[int, np.ndarray]] = []  # (first frame in force, plan) newest last, at most two
        self._done = int(counter[0])  # frames up to this one have been sent
        self._lock = threading.Lock()  # poll, panic and close may come from different threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def channels(self) -> tuple[int, ...]:
        """The MIDI channel indices it sends on, in order."""
        return tuple(tracker.channel for _, tracker in self._streams)

    def _refresh_plan(self) -> None:
        """Copy the plan in force if it is new (and still whole once copied)."""
        bus, task = self._bus, self._task
        row = int(bus.state[task, ACTIVE_ROW])
        if row < 0:
            return
        stamp = int(bus.stamps[task, row])
        start = stamp + self._lookahead
        if stamp < 0 or (self._plans and self._plans[-1][0] == start):
            return
        plan = bus.rows[task, row, : self._size].copy()
        if int(bus.stamps[task, row]) != stamp:  # the row was rewritten while copied: the next poll retries
            return
        self._plans = [*self._plans[-1:], (start, plan.reshape(len(ROLES), HORIZON_FRAMES, PART_ROWS, MAX_NOTES))]

    def _part_at(self, frame: int, role_index: int) -> np.ndarray | None:
        """Role `role_index`'s part frame at `frame`: the row of the newest plan in force there
        (None: outside its horizon, every note inactive), as PlanPart.fill reads it."""
        for start, plans in reversed(self._plans):
            if start <= frame:
                offset = frame - start
                return plans[role_index, offset] if offset < HORIZON_FRAMES else None
        return None

    def poll(self) -> list[tuple[int, Message]]:
        """Send the note changes of every frame begun since the last poll; returns them with
        their frame numbers."""
        with self._lock:
            count = int(self._counter[0])
            sent: list[tuple[int, Message]] = []
            if count < self._done:  # the engine restarted its count
                self._done = count
            self._refresh_plan()
            silent = np.zeros((PART_ROWS, MAX_NOTES))
            for frame in range(max(self._done + 1, count - HORIZON_FRAMES), count + 1):
                for role_index, tracker in self._streams:
                    part = self._part_at(frame, role_index)
                    for message in tracker.advance(silent if part is None else part):
                        self._send(message)
                        sent.append((frame, message))
            self._done = count
            return sent

    def panic(self) -> None:
        """Every note off now (each note explicitly, then All Notes Off on every channel);
        the followers sound again at their next note."""
        with self._lock:
            for _, tracker in self._streams:
                for message in tracker.release():
                    self._send(message)
                self._send([CONTROL_CHANGE | tracker.channel, ALL_NOTES_OFF, 0])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tutti-midi-out", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except rtmidi.RtMidiError as exc:  # a port gone with its server: stop sending, keep the take
                print(f"tutti: MIDI output stopped: {exc}", file=sys.stderr, flush=True)
                return

    def close(self) -> None:
        """Stop polling, turn every note off and close the ports; a second call does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        try:
            self.panic()
        finally:
            self.ports.close()


def open_plan_midi_out(config: TuttiConfig, scheduler: FrameScheduler, counter: np.ndarray,
                       api: int = DEFAULT_API) -> PlanMidiOut | None:
    """The MIDI output of `config`'s role voices, or None when no voice has a role or the config
    sends none. A virtual port alone that cannot open is reported and skipped; a named port that
    cannot open is a TuttiError."""
    conductor = config.conductor
    channels = role_channels((name, voice.role) for name, voice in config.voices)
    if not channels or not (conductor.midi_out or conductor.midi_out_port):
        return None
    try:
        ports = MidiPorts(conductor.midi_out, conductor.midi_out_port, api)
    except TuttiError as err:
        if conductor.midi_out_port:
            raise
        print(f"tutti: the followers' notes go out without MIDI: {err}", file=sys.stderr, flush=True)
        return None
    roles = dict(config.voices)
    return PlanMidiOut(scheduler, counter, {name: (roles[name].role, c) for name, c in channels.items()}, ports)
