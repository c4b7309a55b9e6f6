"""Terminal control of a live session: one command per line on standard input.

    p | panic            mute every voice and reset them
    u | unmute           unmute every voice
    set PARAM VALUE      e.g. `set voices.bass.gain_db -6` (names: `params`)
    swap VOICE KIND      change a voice's sound while it plays, e.g. `swap organ reference:bowed-strings`
    learn PARAM          MIDI learn: the next knob or key you move is bound to PARAM
    q | quit             end the take
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

from engine.errors import TuttiError
from engine.parameters import LiveParameters
from realtime.engine_client import EngineClient
from realtime.midi import MidiController


class Console:
    """Reads commands on a daemon thread until end of input; replies go to `out`."""

    def __init__(
        self,
        engine: EngineClient,
        parameters: LiveParameters,
        midi: MidiController | None,
        request_stop: Callable[[], None],
        source: TextIO = sys.stdin,
        out: TextIO = sys.stdout,
    ) -> None:
        self._engine = engine
        self._parameters = parameters
        self._midi = midi
        self._request_stop = request_stop
        self._source = source
        self._out = out
        self._thread = threading.Thread(target=self._run, name="tutti-console", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        for line in self._source:
            words = line.split()
            if not words:
                continue
            try:
                reply = self.execute(words)
            except TuttiError as err:
                reply = f"error: {err}"
            print(f"tutti: {reply}", file=self._out, flush=True)

    def execute(self, words: list[str]) -> str:
        """Run one command; returns the line to print."""
        command, arguments = words[0].lower(), words[1:]
        voices = self._engine.voice_names
        if command in ("p", "panic"):
            if not self._engine.panic():
                raise TuttiError("the engine's command queue is full: press panic again")
            return "panic: all voices muted and reset (`unmute` to play again)"
        if command in ("u", "unmute"):
            for name in voices:
                self._parameters.set_value(f"voices.{name}.mute", 0.0)
            return "all voices unmuted"
        if command == "set" and len(arguments) == 2:
            try:
                value = float(arguments[1])
            except ValueError:
                raise TuttiError(f"value {arguments[1]!r} is not a number") from None
            self._parameters.set_value(arguments[0], value)
            return f"{arguments[0]} = {self._parameters.value(arguments[0]):g}"
        if command == "params":
            return ", ".join(self._parameters.names)
        if command == "swap" and len(arguments) == 2:
            name, kind = arguments
            self._engine.swap(name, kind)
            return f"{name} now plays {kind}"
        if command == "learn" and len(arguments) == 1:
            if self._midi is None:
                raise TuttiError("MIDI is not open: start live with --midi PORT or midi.virtual_port = true")
            self._midi.arm(arguments[0])
            return f"move a knob or key to bind it to {arguments[0]}"
        if command in ("q", "quit"):
            self._request_stop()
            return "stopping"
        return "commands: panic | unmute | set PARAM VALUE | params | swap VOICE KIND | learn PARAM | quit"
