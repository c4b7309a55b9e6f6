"""The mixer's controls: a dB fader, a pan knob and a peak/RMS meter with clip hold.

Controls write live parameters (engine/parameters.py) as plain values the moment they move;
they never wait on the engine. Faders and knobs take the mouse wheel and the keyboard (Qt's
slider keys), show their value on hover and reset on a double-click.
"""

from __future__ import annotations

import math
import time

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QPainter, QMouseEvent
from PyQt6.QtWidgets import QDial, QSlider, QToolTip, QWidget

from engine.parameters import LiveParameters

STEPS_PER_UNIT = 10        # faders move in 0.1 dB, knobs in 0.01 of the pan range
METER_FLOOR_DB = -60.0
CLIP_HOLD_S = 2.0
PEAK_HOLD_S = 1.0
PEAK_FALL_DB_PER_S = 20.0

GREEN, AMBER, RED = QColor("#3ddc84"), QColor("#f5c542"), QColor("#ff4b4b")


def db_text(value_db: float, floor_db: float) -> str:
    return "-inf dB" if value_db <= floor_db else f"{value_db:+.1f} dB"


class ParameterFader(QSlider):
    """A vertical fader on a dB parameter; double-click returns it to `default` (the take's
    starting value)."""

    def __init__(self, parameters: LiveParameters, name: str, default: float, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.parameters, self.parameter, self.default = parameters, name, default
        spec = parameters.spec(name)
        self.floor_db = spec.minimum
        self.setRange(round(spec.minimum * STEPS_PER_UNIT), round(spec.maximum * STEPS_PER_UNIT))
        self.setSingleStep(5)      # arrow keys and wheel: 0.5 dB
        self.setPageStep(60)       # page keys: 6 dB
        self.setTickPosition(QSlider.TickPosition.TicksBothSides)
        self.setTickInterval(60)
        self.setMinimumHeight(120)
        self.setValue(round(parameters.value(name) * STEPS_PER_UNIT))
        self.valueChanged.connect(self._publish)
        self.setToolTip(f"{name}: wheel, arrow or page keys; double-click resets to {db_text(default, self.floor_db)}")

    @property
    def value_db(self) -> float:
        return self.value() / STEPS_PER_UNIT

    def _publish(self, _: int) -> None:
        self.parameters.set_value(self.parameter, self.value_db)
        if self.underMouse() or self.isSliderDown():
            QToolTip.showText(self.mapToGlobal(self.rect().center()), db_text(self.value_db, self.floor_db), self)

    def enterEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        QToolTip.showText(self.mapToGlobal(self.rect().center()), db_text(self.value_db, self.floor_db), self)
        super().enterEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.setValue(round(self.default * STEPS_PER_UNIT))


class PanKnob(QDial):
    """A pan knob (-1 left .. +1 right); double-click centres it."""

    def __init__(self, parameters: LiveParameters, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.parameters, self.parameter = parameters, name
        self.setRange(-100, 100)
        self.setSingleStep(5)
        self.setNotchesVisible(True)
        self.setFixedSize(44, 44)
        self.setValue(round(parameters.value(name) * 100))
        self.valueChanged.connect(self._publish)
        self.setToolTip(f"{name}: wheel or arrow keys; double-click centres")

    def text(self) -> str:
        value = self.value()
        return "C" if value == 0 else f"{'L' if value < 0 else 'R'}{abs(value)}"

    def _publish(self, value: int) -> None:
        self.parameters.set_value(self.parameter, value / 100.0)
        if self.underMouse():
            QToolTip.showText(self.mapToGlobal(self.rect().center()), f"pan {self.text()}", self)

    def enterEvent(self, event) -> None:  # noqa: N802
        QToolTip.showText(self.mapToGlobal(self.rect().center()), f"pan {self.text()}", self)
        super().enterEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.setValue(0)


class LevelMeter(QWidget):
    """Peak (bright bar and a falling hold line) and RMS (inner bar) in dBFS over 60 dB, with a
    clip light held CLIP_HOLD_S after a sample reached full scale (a click clears it)."""

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.peak_db = self.rms_db = self.hold_db = METER_FLOOR_DB
        self._hold_time = self._clip_time = -math.inf
        self.clipped = False
        self.setFixedWidth(18)
        self.setMinimumHeight(120)
        self.setToolTip(f"{what}: peak (bar, hold line) and RMS (inner bar) in dBFS; red top light = clipped, click clears")

    def update_levels(self, peak: float, mean_square: float) -> None:
        """Show one display frame's peak (linear) and mean square (linear power)."""
        now = time.monotonic()
        self.peak_db = max(METER_FLOOR_DB, 20 * math.log10(peak)) if peak > 0 else METER_FLOOR_DB
        self.rms_db = max(METER_FLOOR_DB, 10 * math.log10(mean_square)) if mean_square > 0 else METER_FLOOR_DB
        if self.peak_db >= self.hold_db:
            self.hold_db, self._hold_time = self.peak_db, now
        elif now - self._hold_time > PEAK_HOLD_S:
            self.hold_db = max(self.peak_db, self.hold_db - PEAK_FALL_DB_PER_S / 30.0)
        if peak >= 1.0:
            self._clip_time = now
        self.clipped = now - self._clip_time < CLIP_HOLD_S
        self.setToolTip(self.toolTip().split(" |")[0] + f" | peak {db_text(self.peak_db, METER_FLOOR_DB)}, "
                        f"RMS {db_text(self.rms_db, METER_FLOOR_DB)}")
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._clip_time = -math.inf
        self.clipped = False
        self.update()

    def _y(self, db: float, top: float, height: float) -> float:
        return top + height * (1.0 - (db - METER_FLOOR_DB) / -METER_FLOOR_DB)

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w, h, QColor("#0b0d10"))
        painter.fillRect(2, 2, w - 4, 6, RED if self.clipped else QColor("#3a1a1a"))
        top, height = 11.0, h - 13.0
        y = self._y(self.peak_db, top, height)
        for lo, hi, colour in ((METER_FLOOR_DB, -18.0, GREEN), (-18.0, -6.0, AMBER), (-6.0, 0.0, RED)):
            y_lo, y_hi = self._y(lo, top, height), self._y(hi, top, height)
            if y < y_lo:
                painter.fillRect(QRectF(2, max(y, y_hi), w - 4, y_lo - max(y, y_hi)), colour.darker(130))
        y_rms = self._y(self.rms_db, top, height)
        painter.fillRect(QRectF(w / 2 - 2, y_rms, 4, top + height - y_rms), QColor("#e8f0ff"))
        painter.setPen(QColor("#ffffff"))
        y_hold = self._y(self.hold_db, top, height)
        painter.drawLine(2, round(y_hold), w - 3, round(y_hold))
        painter.end()
