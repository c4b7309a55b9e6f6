"""A piano-roll PNG of a conductor performance, drawn with Qt offscreen (no display needed).

Rows are MIDI pitches (a line at every C), time runs left to right in heard seconds. The
leader's analysed pitch is black; each role's notes are coloured bars with a tick where a note
starts; the true parts, where known, lie faintly beneath. A reader sees whether the bass moves
with the harmony and whether the followers land with the leader.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.safe_files import atomic_path

COLOURS = {"leader": (0, 0, 0), "bass": (31, 119, 180), "counter": (44, 160, 44), "harmony": (255, 127, 14),
           "drums": (214, 39, 40)}
WIDTH, HEIGHT, MARGIN = 1400, 560, 48
PITCH_RANGE = (24, 96)
_APPS: list = []  # the application this module made, kept alive: fonts die with it


def _app():
    """The application Qt's fonts need; an offscreen one when there is no display. A QApplication
    (not a bare QGuiApplication), so that a window the same process opens later can use it."""
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication(["tutti-roll"])
        _APPS.append(app)
    return app


def _segments(pitch: np.ndarray) -> list[tuple[int, int, float]]:
    """(first frame, end frame, pitch) of every run of one pitch (NaN: silence)."""
    runs, start = [], None
    for i in range(len(pitch) + 1):
        value = pitch[i] if i < len(pitch) else np.nan
        if start is not None and (np.isnan(value) or abs(value - pitch[start]) > 0.5):
            runs.append((start, i, float(pitch[start])))
            start = None
        if start is None and not np.isnan(value):
            start = i
    return runs


def write_roll(path: Path, frame_s: float, leader_midi: np.ndarray, roles: dict[str, np.ndarray],
               onsets: dict[str, np.ndarray], title: str, truth: dict[str, np.ndarray] | None = None) -> None:
    """Write the roll as PNG. leader_midi [n] (NaN unvoiced); roles and truth: name -> [n, k]
    MIDI pitches (NaN silent); onsets: name -> [n, k] booleans."""
    from PyQt6.QtCore import QPointF, QRectF
    from PyQt6.QtGui import QColor, QImage, QPainter, QPen

    _app()
    n = len(leader_midi)
    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_RGB32)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    low, high = PITCH_RANGE
    span_s = max(n * frame_s, 1e-3)
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def x(frame: float) -> float:
        return MARGIN + plot_w * frame * frame_s / span_s

    def y(midi: float) -> float:
        return MARGIN + plot_h * (high - midi) / (high - low)

    painter.setPen(QPen(QColor(225, 225, 225), 1))
    for c in range(low, high + 1, 12):
        painter.drawLine(QPointF(MARGIN, y(c)), QPointF(WIDTH - MARGIN, y(c)))
        painter.drawText(QPointF(6, y(c) + 4), f"C{c // 12 - 1}")
    step = 1 if span_s <= 12 else 5
    for second in range(0, int(span_s) + 1, step):
        frame = second / frame_s
        painter.drawLine(QPointF(x(frame), MARGIN), QPointF(x(frame), HEIGHT - MARGIN))
        painter.drawText(QPointF(x(frame) - 4, HEIGHT - MARGIN + 16), f"{second}")
    bar = plot_h / (high - low)
    for name, pitches in (truth or {}).items():
        colour = QColor(*COLOURS.get(name, (120, 120, 120)), 60)
        for k in range(pitches.shape[1]):
            for first, end, midi in _segments(pitches[:, k]):
                painter.fillRect(QRectF(x(first), y(midi) - bar * 1.2, x(end) - x(first), bar * 2.4), colour)
    for name, pitches in roles.items():
        colour = QColor(*COLOURS.get(name, (120, 120, 120)))
        for k in range(pitches.shape[1]):
            for first, end, midi in _segments(pitches[:, k]):
                painter.fillRect(QRectF(x(first), y(midi) - bar * 0.45, max(1.0, x(end) - x(first)), bar * 0.9), colour)
            painter.setPen(QPen(colour.darker(160), 1.5))
            for frame in np.nonzero(onsets[name][:, k])[0]:
                if not np.isnan(pitches[frame, k]):
                    painter.drawLine(QPointF(x(frame), y(pitches[frame, k]) - bar * 1.5),
                                     QPointF(x(frame), y(pitches[frame, k]) + bar * 1.5))
    painter.setPen(QPen(QColor(*COLOURS["leader"]), 2))
    for first, end, midi in _segments(np.round(leader_midi)):
        painter.drawLine(QPointF(x(first), y(midi)), QPointF(x(end), y(midi)))
    painter.setPen(QPen(QColor(0, 0, 0), 1))
    painter.drawText(QPointF(MARGIN, 20), title + ("   (faint: the true parts)" if truth else ""))
    painter.drawText(QPointF(WIDTH / 2 - 40, HEIGHT - 8), "heard time (s)")
    legend_x = WIDTH - MARGIN - 90 * len(COLOURS)
    for i, (name, rgb) in enumerate(COLOURS.items()):
        if name != "leader" and name not in roles:
            continue
        painter.fillRect(QRectF(legend_x + 90 * i, 10, 14, 10), QColor(*rgb))
        painter.drawText(QPointF(legend_x + 90 * i + 18, 20), name)
    painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        if not image.save(str(temporary), "PNG"):
            raise OSError(f"Qt could not write {path}")


def roll_from_parts(parts: np.ndarray, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Pitches (NaN silent) and onsets of part frames [n, voices, 4, MAX_NOTES] (engine/parts.py), by voice name."""
    from engine.parts import PART_ACTIVE, PART_F0, PART_ONSET

    pitches, onsets = {}, {}
    for v, name in enumerate(names):
        part = parts[:, v]
        active = part[:, PART_ACTIVE] > 0
        pitches[name] = np.where(active, 69.0 + 12.0 * np.log2(np.maximum(part[:, PART_F0], 1e-6) / 440.0), np.nan)
        onsets[name] = part[:, PART_ONSET] > 0
    return pitches, onsets


def leader_pitch(frames: np.ndarray, voicing_threshold: float = 0.5) -> np.ndarray:
    """The analysed leader's MIDI pitch per frame (NaN unvoiced) from analysis frames [n, 16]."""
    from engine.features.frames import F0, VOICING

    voiced = (frames[:, VOICING] >= voicing_threshold) & (frames[:, F0] > 0)
    return np.where(voiced, 69.0 + 12.0 * np.log2(np.maximum(frames[:, F0], 1e-6) / 440.0), np.nan)


def write_followers_roll(followers_npz: Path, title: str, seconds: float = 30.0) -> Path:
    """roll.png beside a perform's followers.npz: its first `seconds`, one colour per role."""
    from engine.offline import ROLL_NAME

    with np.load(followers_npz) as saved:
        frame_s = float(saved["frame_s"])
        n = min(len(saved["leader"]), int(seconds / frame_s))
        roles = [str(role) or str(voice) for role, voice in zip(saved["roles"], saved["voices"])]
        pitches, onsets = roll_from_parts(saved["parts"][:n], tuple(roles))
        leader = leader_pitch(saved["leader"][:n])
    path = Path(followers_npz).with_name(ROLL_NAME)
    write_roll(path, frame_s, leader, pitches, onsets, title)
    return path
