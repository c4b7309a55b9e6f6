"""Whether `live` opens the mixer window, and the take driven from the Qt event loop.

With the window on, the Qt main thread of the control process does what `LiveSession.run`'s
loop does: a timer calls `session.poll()` every MAIN_LOOP_S and ends the event loop when the
take should end; closing the window ends the take.
"""

from __future__ import annotations

import os
import signal
import sys

from engine.errors import TuttiError
from realtime.live import MAIN_LOOP_S, LiveSession

HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc")


def window_wanted(gui: bool | None) -> bool:
    """None (auto): a display exists. True (--gui): forced, unless Qt has nowhere to draw,
    which prints one line and plays without the window. False (--no-gui): never."""
    if gui is False:
        return False
    display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    headless = os.environ.get("QT_QPA_PLATFORM", "") in HEADLESS_PLATFORMS
    if gui is None:
        return display
    if display or headless:
        return True
    print("tutti: no display for the mixer window (DISPLAY and WAYLAND_DISPLAY are unset): playing without "
          "it; set QT_QPA_PLATFORM=offscreen to draw it offscreen", file=sys.stderr, flush=True)
    return False


def run_in_window(session: LiveSession) -> None:
    """`session.run()` with the mixer window: stream until the take ends or the window closes,
    then close the take with every file readable."""
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from gui.window import MixerWindow

    app = QApplication.instance() or QApplication(["tutti"])
    interrupted = []

    def on_sigint(*_: object) -> None:
        interrupted.append(True)
        app.quit()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        window = MixerWindow(session)
        window.closed.connect(session.request_stop)
        session.start()
        window.show()
        window.start_display()
        failures: list[str] = []
        timer = QTimer()
        timer.setInterval(round(MAIN_LOOP_S * 1000))

        def tick() -> None:
            try:
                going = session.poll()
            except TuttiError as err:
                failures.append(str(err))
                going = False
            if not going:
                timer.stop()
                app.quit()

        timer.timeout.connect(tick)
        timer.start()
        app.exec()
        window.stop_display()
        window.close()
        if interrupted:
            session.stop_reason = "stopped by Ctrl-C"
        if failures:
            session.stop_reason = session.failure = failures[0]
    except TuttiError as err:
        session.stop_reason = session.failure = str(err)
    finally:
        signal.signal(signal.SIGINT, previous)
        session.shut_down()
