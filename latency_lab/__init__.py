"""Latency lab: `scenecloud probe` measures glass-to-glass latency of a Scene Cloud deployment.

A publisher child process (`publisher.py`) sends a test picture over WHIP whose pixels carry
the capture wall-clock (`stamp.py`), with a 1 kHz beep at every whole second of that clock; a
watcher (`watcher.py`) reads the production's LL-HLS output like a player and decodes the
stamps; `report.py` turns the samples into figures, a table, JSON and a PNG plot; `probe.py`
is the command that runs all of it.
"""
