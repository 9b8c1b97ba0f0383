"""Stopping a run at a checkpoint when the process is told to stop (pre-emption).

SIGTERM, SIGINT and SIGUSR2 set a flag that the training loop polls after every
step; the workers agree on it (``distribute.any_worker``), the loop saves a
checkpoint and ``train`` returns status ``preempted`` (the command exits with
status 75), and running the same command again resumes.

Why not ``tf.distribute.experimental.PreemptionCheckpointHandler``: it supports
only ``MultiWorkerMirroredStrategy`` and ``TPUStrategy``, not the default strategy
or ``MirroredStrategy`` that most runs use (one machine); after saving it ends the
process (``exit_fn``) where ``train`` returns its status to the caller (sweeps run
it in-process, and a SLURM run re-raises SIGUSR2 for submitit to requeue it); and
away from GCP it watches only SIGTERM unless given a polling function, which is
what this flag already is. The saving and the agreement between workers stay in
the training loop, on every strategy alike.
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
