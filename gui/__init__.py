"""The PyQt6 window (mixer strips, meters, MIDI learn, record/export). Not built yet: `live`
runs in the terminal and publishes everything a window needs (engine/parameters.py,
realtime/telemetry.py)."""
