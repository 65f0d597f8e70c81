"""Ctrl-C (SIGINT) and SIGTERM as a request to stop between training steps, never inside one."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """While active, the first SIGINT or SIGTERM only sets `requested`: the loop finishes the step it is in,
    saves, and stops. A second signal raises KeyboardInterrupt at once (nothing is saved then: the last checkpoint
    stays the one to resume from). Outside the main thread (no signal handlers there) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
