"""The input view: the player's pitch (on a note scale) and loudness over the last seconds,
from the analysis frames the engine publishes (engine.scheduling.FrameHistory)."""

from __future__ import annotations

import math

import numpy as np
from PyQt6.QtCore import QPointF, Qt
from PyQt6.QtGui import QColor, QPainter, QPainterPath, QPen, QPolygonF
from PyQt6.QtWidgets import QWidget

from engine.features.frames import F0, LOUDNESS, VOICING
from engine.scheduling import FrameHistory

TRACE_S = 6.0
LOW_MIDI, HIGH_MIDI = 36.0, 96.0          # C2 .. C7
LOUDNESS_FLOOR_DB = -80.0
VOICED = 0.5
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(f0_hz: float) -> str:
    """'A4 440 Hz' for a pitch, '-' for silence."""
    if f0_hz <= 0:
        return "-"
    midi = round(69 + 12 * math.log2(f0_hz / 440.0))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1} {f0_hz:.0f} Hz"


class InputTrace(QWidget):
    """Pitch line (voiced frames only) over a loudness area, newest at the right."""

    def __init__(self, history: FrameHistory, frame_rate_hz: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.n_frames = int(TRACE_S * frame_rate_hz)
        self.frames: np.ndarray | None = None
        self.setMinimumSize(360, 140)
        self.setToolTip(f"the player's pitch (line, note scale C2..C7) and loudness (area) over the last {TRACE_S:g} s")

    def refresh(self) -> None:
        """Copy the newest frames (one window read per display frame)."""
        count = self.history.count
        available = min(count, self.n_frames)
        self.frames = self.history.window(count, available) if available > 0 else None
        self.update()

    @property
    def latest_f0_hz(self) -> float:
        if self.frames is None or len(self.frames) == 0:
            return 0.0
        last = self.frames[-1]
        return float(last[F0]) if last[VOICING] >= VOICED else 0.0

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w, h, QColor("#0b0d10"))
        painter.setPen(QPen(QColor("#1f2630"), 1))
        for octave in range(int(LOW_MIDI), int(HIGH_MIDI) + 1, 12):
            y = h * (1 - (octave - LOW_MIDI) / (HIGH_MIDI - LOW_MIDI))
            painter.drawLine(0, round(y), w, round(y))
            painter.setPen(QColor("#56606e"))
            painter.drawText(4, round(y) - 2, f"C{octave // 12 - 1}")
            painter.setPen(QPen(QColor("#1f2630"), 1))
        if self.frames is not None and len(self.frames) > 1:
            frames = self.frames
            x = w - (len(frames) - 1 - np.arange(len(frames))) * (w / self.n_frames)
            loud = np.clip((frames[:, LOUDNESS] - LOUDNESS_FLOOR_DB) / -LOUDNESS_FLOOR_DB, 0.0, 1.0)
            area = QPolygonF([QPointF(x[0], h)] + [QPointF(xi, h * (1 - 0.5 * li)) for xi, li in zip(x, loud)]
                             + [QPointF(x[-1], h)])
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(61, 140, 220, 90))
            painter.drawPolygon(area)
            voiced = (frames[:, VOICING] >= VOICED) & (frames[:, F0] > 0)
            midi = 69 + 12 * np.log2(np.where(voiced, frames[:, F0], 440.0) / 440.0)
            y = h * (1 - (midi - LOW_MIDI) / (HIGH_MIDI - LOW_MIDI))
            path, drawing = QPainterPath(), False
            for xi, yi, on in zip(x, y, voiced):
                if on and drawing:
                    path.lineTo(xi, yi)
                elif on:
                    path.moveTo(xi, yi)
                drawing = bool(on)
            painter.setPen(QPen(QColor("#ffb347"), 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        painter.setPen(QColor("#c8d0dc"))
        painter.drawText(w - 130, 16, f"input  {note_name(self.latest_f0_hz)}")
        painter.end()
