"""Stopping a run at a checkpoint when the process is told to stop (pre-emption).

SIGTERM, SIGINT and SIGUSR2 set a flag that the training loop polls after every
step; the loop then saves a checkpoint and returns status ``preempted`` (the
command exits with status 75), and running the same command again resumes.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("osc_tf")


class PreemptionFlag:
    """Context manager turning SIGTERM/SIGINT/SIGUSR2 into a flag the loop polls.

    SIGUSR2 is what SLURM sends ahead of a job's time limit with
    ``--signal=USR2@<seconds>`` (submitit asks for it); ``signal`` keeps the name
    of the first signal received (e.g. ``"SIGUSR2"``), None before any.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)

    def __init__(self):
        self.raised = False
        self.signal: str | None = None
        self._previous = {}

    def _handler(self, signum, frame):
        log.warning("received signal %d: will checkpoint and stop", signum)
        self.raised = True
        self.signal = self.signal or signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False
