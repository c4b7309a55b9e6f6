"""The PyQt6 mixer window of `launch.py live` (gui/app.py decides whether it opens and drives
the take from Qt's event loop; gui/window.py is the window). It meets the engine only through
shared memory (engine/parameters.py, realtime/engine_client.py)."""
