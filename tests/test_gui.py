"""The mixer window on a real live take (JACK dummy server, offscreen Qt): its fader, mute and
MIDI learn reach the engine, and the recorded mix shows it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from demo.melody import DEMO_PATH
from engine.config import load_config
from engine.offline import prepare_output_dir

REPO = Path(__file__).resolve().parents[1]
SR = 48000


def _pump(app, session, seconds: float) -> None:
    """Run the Qt event loop and the take's poll, as `gui.app.run_in_window` does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        assert session.poll(), session.stop_reason
        time.sleep(0.02)


def _gain_in_mix(mix: np.ndarray, voices: list[np.ndarray], which: int, start: int, stop: int) -> float:
    """Least-squares weight of voice `which` (a pre-fader file) in the left channel of the mix."""
    basis = np.stack([v[start:stop] for v in voices], axis=1).astype(np.float64)
    weights, *_ = np.linalg.lstsq(basis, mix[start:stop, 0].astype(np.float64), rcond=None)
    return float(weights[which])


def test_the_window_moves_faders_mutes_and_learns_midi_in_a_live_take(jack_server, tmp_path) -> None:
    import rtmidi
    from PyQt6.QtCore import Qt
    from PyQt6.QtTest import QTest
    from PyQt6.QtWidgets import QApplication

    from gui.window import MixerWindow
    from realtime.devices import resolve_device
    from realtime.live import LiveOptions, LiveSession

    app = QApplication.instance() or QApplication(["tutti-test"])
    config = load_config()
    take = tmp_path / "take"
    prepare_output_dir(take, False, config.voice_names)
    options = LiveOptions(input_file=DEMO_PATH, loop=True, record_dir=take, print_telemetry=False, gui=True)
    session = LiveSession(config, resolve_device(None), options)
    first, second = session.voice_names[0], session.voice_names[1]
    sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="tutti-gui-test")
    try:
        window = MixerWindow(session)
        session.start()
        window.show()
        window.start_display()
        _pump(app, session, 2.0)
        assert window.master.meter.peak_db > -40, "the master meter shows the mix"
        assert window.strips[first].meter.peak_db > -60

        fader = window.strips[first].fader
        start_db = session.parameters.value(f"voices.{first}.gain_db")
        fader.setFocus()
        QTest.keyClick(fader, Qt.Key.Key_PageDown)
        QTest.keyClick(fader, Qt.Key.Key_PageDown)
        assert session.parameters.value(f"voices.{first}.gain_db") == pytest.approx(start_db - 12.0, abs=0.01)
        _pump(app, session, 1.5)

        QTest.mouseClick(window.strips[second].mute, Qt.MouseButton.LeftButton)
        assert session.parameters.value(f"voices.{second}.mute") == 1.0
        _pump(app, session, 1.0)

        # MIDI learn on the muted voice's fader (so the mix stays as it is): arm, send a CC.
        QTest.mouseClick(window.strips[second].learn, Qt.MouseButton.LeftButton)
        assert session.midi.armed == f"voices.{second}.gain_db"
        target = [i for i, port in enumerate(sender.get_ports()) if "tutti:midi_in" in port]
        assert target, sender.get_ports()
        sender.open_port(target[0])
        sender.send_message([0xB0, 21, 127])
        deadline = time.monotonic() + 3.0
        while not session.midi.bindings and time.monotonic() < deadline:
            _pump(app, session, 0.05)
        sender.send_message([0xB0, 21, 0])  # now bound: the fader goes to the bottom
        _pump(app, session, 1.0)
        bindings = session.midi.bindings
        assert [(b.kind, b.number, b.parameter) for b in bindings] == [("cc", 21, f"voices.{second}.gain_db")]
        assert "CC21" in window.strips[second].binding.text()
        assert window.bindings.count() == 1 and "CC21" in window.bindings.item(0).text()
        assert session.parameters.value(f"voices.{second}.gain_db") == -60.0
        assert window.strips[second].fader.value_db == -60.0, "the fader follows the knob"
        assert session.midi.armed is None and not window.strips[second].learn.isChecked()

        deadline = time.monotonic() + 4.0  # the screenshot shows the ensemble playing, not a rest
        while time.monotonic() < deadline and min(s.meter.peak_db for s in window.strips.values()
                                                  if s is not window.strips[second]) < -40:
            _pump(app, session, 0.05)
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        assert window.grab().save(str(docs / "mixer.png"))
        window.stop_display()
        window.close()
    finally:
        sender.delete()
        session.shut_down()
        session.finish()
        import sounddevice as sd

        if not sd._initialized:  # noqa: SLF001: the take left PortAudio; the JACK fixture leaves it again
            sd._initialize()  # noqa: SLF001

    records = json.loads((take / "session.json").read_text())["automation"]["records"]
    names = list(session.voice_names)
    gain_at = min(r[0] for r in records if r[1] == 0 and abs(r[3] - 10 ** ((start_db - 12) / 20)) < 1e-4)
    mute_at = min(r[0] for r in records if r[1] == 1 and r[3] == 1.0)
    mix, _ = sf.read(str(take / "mix.wav"), dtype="float32")
    voices = [sf.read(str(take / f"{name}.wav"), dtype="float32")[0] for name in names]
    voices = [v if v.ndim == 1 else v[:, 0] for v in voices]
    margin = SR // 10
    before = _gain_in_mix(mix, voices, 0, SR // 2, gain_at)
    after = _gain_in_mix(mix, voices, 0, gain_at + margin, mute_at)
    print(f"{first} in the mix: {before:.3f} before the fader, {after:.3f} after (-12 dB = x0.251)")
    assert after / before == pytest.approx(10 ** (-12 / 20), rel=0.1)
    heard = _gain_in_mix(mix, voices, 1, SR // 2, mute_at)
    muted = _gain_in_mix(mix, voices, 1, mute_at + margin, len(mix))
    print(f"{second} in the mix: {heard:.3f} before mute, {muted:.4f} after")
    assert heard > 0.1 and abs(muted) < 0.01 * heard


def test_gui_flag_without_a_display_plays_on_with_one_line(monkeypatch) -> None:
    from gui.app import window_wanted

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert window_wanted(None) is False
    assert window_wanted(True) is False
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert window_wanted(True) is True and window_wanted(None) is False and window_wanted(False) is False
    monkeypatch.setenv("DISPLAY", ":0")
    assert window_wanted(None) is True and window_wanted(False) is False


def test_launch_live_gui_offscreen_runs_the_take_from_the_window(jack_server, tmp_path) -> None:
    import subprocess
    import sys

    take = tmp_path / "take"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("DISPLAY", None)
    result = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), "live", "--gui", "--input-file", str(DEMO_PATH),
         "--duration", "3", "--record", str(take)],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "duration 3 s reached" in result.stdout
    session = json.loads((take / "session.json").read_text())
    assert session["stop_reason"] == "duration 3 s reached" and session["telemetry"]["callbacks"] > 2 * SR / 128
    assert sf.info(str(take / "mix.wav")).frames >= 2.5 * SR
