"""Runs, datasets and workers: the lifecycle API used by the queue and the app, one module each
(``runs``, ``datasets``, ``workers``); ``registry.X`` reaches all three.

Every status change is one guarded ``UPDATE ... WHERE id = ? AND status IN (...)``: SQLite runs
it atomically, so when two processes race for the same run exactly one row update wins and the
loser gets :class:`~jobs.errors.IllegalTransition`. Timestamps are float UNIX seconds.

Allowed transitions (anything else raises)::

    queued  -> running (claim) | cancelled | failed
    running -> finished | failed | diverged | cancelled | lost
    lost    -> running (claim) | queued (requeue) | failed | cancelled
    failed | cancelled -> queued (reopen: resume from the checkpoint, ``jobs.runs.submit.resume``)

A run that is over (or a dataset no active run uses) can be deleted: :func:`delete_run`,
:func:`delete_dataset`. Workers take runs in a fair order between users (:func:`fair_queue`).
"""

from jobs.store.registry.datasets import *  # noqa: F403
from jobs.store.registry.runs import *  # noqa: F403
from jobs.store.registry.runs import REOPENABLE, TRANSITIONS  # noqa: F401
from jobs.store.registry.workers import *  # noqa: F403
