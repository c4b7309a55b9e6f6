"""The mixer window of a live session: a strip per voice, the input and the master, the status
panel, the input view and MIDI learn.

It lives on the control process's Qt main thread and meets the engine only through shared
memory: each display frame (30 Hz) it drains the meter ring, reads each voice's pitch and the
analysis frames, and now and then the telemetry; controls write parameters as plain floats.
"""

from __future__ import annotations

import time

import numpy as np
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QFrame, QGridLayout, QHBoxLayout, QLabel, QListWidget, QMainWindow, QMenu, QPushButton, QVBoxLayout, QWidget,
)

from engine.config.schema import MidiBinding
from engine.latency import measure_onset_latency_samples
from engine.rates import CONTROL_RATE_HZ
from gui.controls import LevelMeter, PanKnob, ParameterFader
from gui.trace import InputTrace, note_name
from realtime.live import LiveSession

DISPLAY_HZ = 30
STATUS_EVERY_FRAMES = 10       # telemetry (which reads /proc) three times a second
FLASH_S = 1.5
ACTIVITY_S = 0.15

STYLE = """
QWidget { background: #15181d; color: #d6dde8; font-size: 11px; }
QFrame#strip { background: #1d2128; border: 1px solid #2b313b; border-radius: 6px; }
QLabel#name { font-weight: bold; font-size: 12px; color: #ffffff; }
QLabel#small { color: #8d99aa; font-size: 10px; }
QLabel#status { background: #0f1216; border: 1px solid #2b313b; border-radius: 4px; padding: 3px 6px; }
QLabel#flash { background: #7a1f1f; color: #ffffff; border: 1px solid #ff4b4b; border-radius: 4px; padding: 3px 6px; }
QPushButton { background: #2a303a; border: 1px solid #3a424f; border-radius: 4px; padding: 3px 6px; }
QPushButton:hover { border-color: #6a7a90; }
QPushButton#mute:checked { background: #c0392b; color: white; }
QPushButton#solo:checked { background: #d4a017; color: black; }
QPushButton#learn:checked { background: #2e86de; color: white; }
QPushButton#panic { background: #8e1b1b; color: white; font-weight: bold; font-size: 13px; padding: 6px 14px; }
QSlider::groove:vertical { background: #0b0d10; width: 6px; border-radius: 3px; }
QSlider::handle:vertical { background: #c8ccd2; border: 1px solid #5a606a; height: 22px; margin: 0 -9px; border-radius: 3px; }
QListWidget { background: #0f1216; border: 1px solid #2b313b; }
QToolTip { background: #f0f0f0; color: #101010; border: 1px solid #808080; }
"""


def _label(text: str, name: str = "", tooltip: str = "") -> QLabel:
    label = QLabel(text)
    if name:
        label.setObjectName(name)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    if tooltip:
        label.setToolTip(tooltip)
    return label


def binding_text(binding: MidiBinding) -> str:
    """'CC7 ch1' / 'note 60 ch1' (channels counted from 1, as on a controller's display)."""
    kind = "CC" if binding.kind == "cc" else "note "
    return f"{kind}{binding.number} ch{binding.channel + 1}"


class Strip(QFrame):
    """Name, kind, pitch, pan, mute/solo, fader with meter, learn and the bound control."""

    def __init__(self, window: MixerWindow, title: str, kind: str, fader_parameter: str,
                 voice: str | None = None) -> None:
        super().__init__()
        self.setObjectName("strip")
        self.setMinimumWidth(96)
        self.window_ = window
        parameters = window.session.parameters
        self.fader_parameter = fader_parameter
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(_label(title, "name", f"strip {title}"))
        self.kind = _label(kind, "small", "what this strip plays")
        layout.addWidget(self.kind)
        self.pitch = _label("-", "", "the pitch it sounds now")
        layout.addWidget(self.pitch)
        self.pan = self.mute = self.solo = None
        if voice is not None:
            self.pan = PanKnob(parameters, f"voices.{voice}.pan")
            layout.addWidget(self.pan, alignment=Qt.AlignmentFlag.AlignHCenter)
            buttons = QHBoxLayout()
            self.mute = self._switch("M", "mute", f"voices.{voice}.mute", "mute this voice")
            self.solo = self._switch("S", "solo", f"voices.{voice}.solo", "solo: only soloed voices play")
            buttons.addWidget(self.mute)
            buttons.addWidget(self.solo)
            layout.addLayout(buttons)
        row = QHBoxLayout()
        self.fader = ParameterFader(parameters, fader_parameter, parameters.value(fader_parameter))
        self.meter = LevelMeter(title)
        row.addWidget(self.fader)
        row.addWidget(self.meter)
        layout.addLayout(row, stretch=1)
        self.value = _label("", "small", "fader level")
        layout.addWidget(self.value)
        self.fader.valueChanged.connect(self._show_value)
        self._show_value()
        self.learn = QPushButton("learn")
        self.learn.setObjectName("learn")
        self.learn.setCheckable(True)
        self.learn.setToolTip("MIDI learn: click, then move a knob or press a key on your controller "
                              "to bind it to this fader (right-click pan, M or S to learn those)")
        self.learn.clicked.connect(lambda on: window.learn(fader_parameter if on else None))
        self.learn.setEnabled(window.session.midi is not None)
        layout.addWidget(self.learn)
        self.binding = _label("", "small", "the MIDI control bound to this strip")
        layout.addWidget(self.binding)
        for control in (self.pan, self.mute, self.solo):
            if control is not None and window.session.midi is not None:
                control.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
                control.customContextMenuRequested.connect(lambda _, c=control: self._learn_menu(c))

    @property
    def parameters_here(self) -> list[str]:
        controls = (self.fader, self.pan, self.mute, self.solo)
        return [c.parameter for c in controls if c is not None]

    def _switch(self, text: str, object_name: str, parameter: str, tooltip: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(object_name)
        button.setCheckable(True)
        button.setChecked(self.window_.session.parameters.value(parameter) >= 0.5)
        button.parameter = parameter
        button.setToolTip(f"{tooltip} ({parameter})")
        button.toggled.connect(lambda on: self.window_.session.parameters.set_value(parameter, 1.0 if on else 0.0))
        return button

    def _learn_menu(self, control: QWidget) -> None:
        menu = QMenu(self)
        action = menu.addAction(f"MIDI learn {control.parameter}")
        action.triggered.connect(lambda: self.window_.learn(control.parameter))
        menu.popup(control.mapToGlobal(control.rect().center()))

    def _show_value(self, *_: int) -> None:
        value = self.fader.value_db
        self.value.setText("-inf" if value <= self.fader.floor_db else f"{value:+.1f} dB")

    def sync(self) -> None:
        """Follow values another hand moved (MIDI, the terminal) without echoing them back."""
        parameters = self.window_.session.parameters
        for control, scale in ((self.fader, 10), (self.pan, 100)):
            if control is not None and not control.isSliderDown():
                target = round(parameters.value(control.parameter) * scale)
                if target != control.value():
                    control.blockSignals(True)
                    control.setValue(target)
                    control.blockSignals(False)
                    if control is self.fader:
                        self._show_value()
        for button in (self.mute, self.solo):
            if button is not None:
                on = parameters.value(button.parameter) >= 0.5
                if on != button.isChecked():
                    button.blockSignals(True)
                    button.setChecked(on)
                    button.blockSignals(False)


class MixerWindow(QMainWindow):
    """The whole window; `refresh` runs at DISPLAY_HZ from its own timer once `start_display`;
    `closed` fires when the user closes it."""

    closed = pyqtSignal()

    def __init__(self, session: LiveSession) -> None:
        super().__init__()
        self.session = session
        engine = session.engine
        self.setWindowTitle(f"Tutti - {session.device.name}")
        self.setStyleSheet(STYLE)
        central = QWidget()
        self.setCentralWidget(central)
        outer = QVBoxLayout(central)
        outer.addLayout(self._status_row())
        middle = QHBoxLayout()
        outer.addLayout(middle, stretch=1)

        kinds = engine.playing_kinds()
        self.strips: dict[str, Strip] = {}
        self.input_strip = Strip(self, "input", "monitor", "mixer.input_monitor_db")
        self.input_strip.pitch.setToolTip("the player's pitch now")
        middle.addWidget(self.input_strip)
        for voice in session.voice_names:
            self.strips[voice] = Strip(self, voice, kinds[voice], f"voices.{voice}.gain_db", voice=voice)
            middle.addWidget(self.strips[voice])
        self.master = Strip(self, "master", "mix", "mixer.master_gain_db")
        self.limiter = _label("limiter 0.0 dB", "small", "the limiter's deepest gain reduction in the last frame")
        self.master.pitch.hide()
        self.master.layout().insertWidget(3, self.limiter)
        middle.addWidget(self.master)

        side = QVBoxLayout()
        middle.addLayout(side, stretch=1)
        self.trace = InputTrace(engine.history, CONTROL_RATE_HZ)
        side.addWidget(self.trace, stretch=2)
        side.addLayout(self._midi_panel(), stretch=1)

        self._frame = 0
        self._flash_until: dict[str, float] = {}
        self._last_counts: dict[str, int] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(round(1000 / DISPLAY_HZ))
        self._timer.timeout.connect(self.refresh)
        self.resize(1180, 560)

    # Building

    def _status_row(self) -> QHBoxLayout:
        session = self.session
        row = QHBoxLayout()
        onset_ms = measure_onset_latency_samples(session.config) * 1000.0 / session.sample_rate_hz
        device_ms = session.device_latency_s * 1000.0
        block_ms = session.block_samples * 1000.0 / session.sample_rate_hz
        fixed = [
            (f"{session.device.name} ({session.device.host_api})", "the audio device"),
            (f"{session.sample_rate_hz} Hz", "sample rate"),
            (f"block {session.block_samples} ({block_ms:.2f} ms)", "block size in samples"),
            (f"latency {onset_ms + device_ms:.1f} ms = onset {onset_ms:.1f} + device {device_ms:.1f}",
             "total latency: the engine's onset latency plus the device's reported input + output latency"),
        ]
        for text, tooltip in fixed:
            row.addWidget(_label(text, "status", tooltip))
        self.load = _label("callback p99 -", "status", "callback time p99 as a share of the block's duration")
        self.xruns = _label("xruns 0", "status", "over/underruns and late callbacks (flashes when it moves)")
        self.misses = _label("misses 0", "status", "worker results that missed their frame (flashes when it moves)")
        self.cpu = _label("engine CPU -", "status", "the engine process's CPU time per wall second")
        for label in (self.load, self.xruns, self.misses, self.cpu):
            row.addWidget(label)
        row.addStretch(1)
        self.panic = QPushButton("PANIC")
        self.panic.setObjectName("panic")
        self.panic.setToolTip("mute every voice and reset them (undo with the terminal's `unmute` or each M)")
        self.panic.clicked.connect(self.session.engine.panic)
        row.addWidget(self.panic)
        return row

    def _midi_panel(self) -> QGridLayout:
        grid = QGridLayout()
        self.activity = _label("MIDI", "status", "lights while MIDI messages arrive")
        grid.addWidget(self.activity, 0, 0)
        midi = self.session.midi
        self.midi_state = _label("no MIDI" if midi is None else "learn: off", "small", "MIDI learn state")
        grid.addWidget(self.midi_state, 0, 1)
        self.bindings = QListWidget()
        self.bindings.setToolTip("MIDI bindings: port, control and the parameter it moves")
        grid.addWidget(self.bindings, 1, 0, 1, 2)
        self._shown_bindings: tuple[MidiBinding, ...] = ()
        return grid

    # Running

    def start_display(self) -> None:
        self._timer.start()

    def stop_display(self) -> None:
        self._timer.stop()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self._timer.stop()
        self.closed.emit()
        super().closeEvent(event)

    def learn(self, parameter: str | None) -> None:
        """Arm MIDI learn for `parameter` (None disarms)."""
        midi = self.session.midi
        if midi is None:
            return
        if parameter is None:
            midi.disarm()
        else:
            midi.arm(parameter)
        self._show_midi()

    def refresh(self) -> None:
        """One display frame: meters, pitches, the trace, MIDI; the status every few frames."""
        self._show_meters(self.session.engine.meters.read_all())
        f0 = self.session.engine.voice_f0
        for i, strip in enumerate(self.strips.values()):
            strip.pitch.setText(note_name(float(f0[i])))
            strip.sync()
        self.input_strip.sync()
        self.master.sync()
        self.trace.refresh()
        self.input_strip.pitch.setText(note_name(self.trace.latest_f0_hz))
        self._show_midi()
        if self._frame % STATUS_EVERY_FRAMES == 0:
            self._show_status()
        self._frame += 1

    def _show_meters(self, records: np.ndarray) -> None:
        if len(records) == 0:
            return
        n = len(self.session.voice_names)
        peaks = records[:, 0 : 2 * (n + 2) : 2].max(axis=0)
        mean_squares = records[:, 1 : 2 * (n + 2) : 2].mean(axis=0)
        for i, strip in enumerate(self.strips.values()):
            strip.meter.update_levels(float(peaks[i]), float(mean_squares[i]))
        self.input_strip.meter.update_levels(float(peaks[n]), float(mean_squares[n]))
        self.master.meter.update_levels(float(peaks[n + 1]), float(mean_squares[n + 1]))
        limiter_db = float(records[:, 2 * (n + 2)].min())
        self.limiter.setText(f"limiter {limiter_db:.1f} dB")
        self.limiter.setObjectName("flash" if limiter_db < -0.1 else "small")
        self.limiter.setStyleSheet("")

    def _show_status(self) -> None:
        t = self.session.engine.telemetry_snapshot()
        self.load.setText(f"callback p99 {t['callback_load_p99']:.0%}")
        self.cpu.setText(f"engine CPU {t['cpu_load']:.0%}")
        now = time.monotonic()
        for key, label, text in (("xruns", self.xruns, "xruns"), ("deadline_misses", self.misses, "misses")):
            count = int(t[key])
            if count > self._last_counts.get(key, 0):
                self._flash_until[key] = now + FLASH_S
            self._last_counts[key] = count
            label.setText(f"{text} {count}")
            name = "flash" if now < self._flash_until.get(key, 0.0) else "status"
            if label.objectName() != name:
                label.setObjectName(name)
                label.setStyleSheet("")  # re-polish with the new name

    def _show_midi(self) -> None:
        midi = self.session.midi
        if midi is None:
            return
        armed = midi.armed
        self.midi_state.setText(f"learn: move a control for {armed}" if armed else "learn: off")
        for strip in (self.input_strip, *self.strips.values(), self.master):
            if strip.learn.isChecked() != (armed == strip.fader_parameter):
                strip.learn.setChecked(armed == strip.fader_parameter)
        bindings = midi.bindings
        if bindings != self._shown_bindings:
            self._shown_bindings = bindings
            self.bindings.clear()
            for binding in bindings:
                self.bindings.addItem(f"{binding_text(binding)}  {binding.port}  ->  {binding.parameter}")
            for strip in (self.input_strip, *self.strips.values(), self.master):
                here = strip.parameters_here
                texts = [f"{binding_text(b)} {b.parameter.rsplit('.', 1)[-1]}" for b in bindings if b.parameter in here]
                strip.binding.setText("\n".join(texts))
        last_s = midi.log[-1].time_s if midi.log else -ACTIVITY_S
        name = "flash" if time.monotonic() - last_s < ACTIVITY_S else "status"
        if self.activity.objectName() != name:
            self.activity.setObjectName(name)
            self.activity.setStyleSheet("")
