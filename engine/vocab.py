"""The product's shared words: every event kind and every run status, in one place.

The engine emits these, ``jobs`` stores them and ``app`` draws them. This module imports
nothing heavy (no torch), so the dashboard can use it too. ``StrEnum`` members compare equal to
their plain strings, so values already in the database need no migration.

A new status is one member of :class:`RunStatus`, its place in :data:`ACTIVE` or
:data:`TERMINAL`, its word in :data:`STATUS_WORDS` (plus its translation in the catalogues) and
its colour in :data:`STATUS_COLORS`; ``tests/test_one_home.py`` fails on a copy elsewhere.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What a timeline event is about; the store and the UI key their annotations on these."""

    RUN_START = "run_start"
    PREFLIGHT = "preflight"  # a pre-flight doctor check (data: tip, severity, passed, change)
    LR_CUT = "lr_cut"  # data: old_lr, new_lr, epoch, tip="T7"
    LR_FLOOR = "lr_floor"  # the run ended because the LR fell below the floor
    EARLY_STOP = "early_stop"
    BEST_RESTORED = "best_restored"
    CLIP_BURST = "clip_burst"  # clipping fired on most steps of an epoch (T9)
    DOCTOR = "doctor"  # a live doctor finding (data: tip, severity, rule, suggestion, change)
    DIVERGED = "diverged"  # data: reason, lr, suggestion, change
    CANCELLED = "cancelled"
    OOM = "oom"  # the device ran out of memory (data: batch_size, suggestion, change)
    CHECKPOINT_FAILED = "checkpoint_failed"
    RESUMED = "resumed"
    RUN_END = "run_end"
    PLATEAU_HINT = "plateau_hint"  # fixed-LR run: a scheduled run would have cut here (T7)
    RELEASED = "released"  # emitted by jobs: a worker shut down and handed the run back
    TEST_SCORE = "test_score"  # the held-out test split, scored once with the best weights
    BUNDLE = "bundle"  # the model bundle's parity check (data: ok, rows, max_diff, why; issue 21)
    SWEEP_PAUSED = "sweep_paused"  # emitted by jobs: a sweep trial waits at a rung (ASHA)
    SWEEP_PROMOTED = "sweep_promoted"  # emitted by jobs: promoted, it resumes to the next rung


class StopReason(StrEnum):
    """Why a run ended (a summary's ``stop_reason``); each has its words as the message code
    ``stop.<reason>`` in ``engine/catalogue.py`` (a test checks that every one does)."""

    EPOCHS = "epochs"  # every configured epoch trained
    EARLY_STOP = "early_stop"  # T7: no better validation loss for the patience
    LR_FLOOR = "lr_floor"  # T7: the schedule cut the LR below its floor
    CANCEL_REQUESTED = "cancel_requested"
    NONFINITE_LOSS = "nonfinite_loss"  # T5: diverged
    NONFINITE_VAL_LOSS = "nonfinite_val_loss"


class RunStatus(StrEnum):
    """Where a run is in its life; the engine itself ends a run as finished, diverged or cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    DIVERGED = "diverged"
    CANCELLED = "cancelled"
    LOST = "lost"


# A run in one of these states never changes again.
TERMINAL: tuple[RunStatus, ...] = (
    RunStatus.FINISHED,
    RunStatus.FAILED,
    RunStatus.DIVERGED,
    RunStatus.CANCELLED,
)
# Runs that may still change: a dataset they use can't be deleted, nor can they; a page showing
# one refreshes itself. Every status is in exactly one of ACTIVE and TERMINAL.
ACTIVE: tuple[RunStatus, ...] = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.LOST)


class SweepStatus(StrEnum):
    """Where a sweep is in its life (``jobs/sweeps``): only a running sweep queues trials; a
    paused one lets the trials in flight reach their rung and starts nothing; cancelled and
    finished never change again."""

    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FINISHED = "finished"


class TrialState(StrEnum):
    """Where a sweep's trial is: in flight (its run queued, running or lost), paused at a rung
    (its run finished there, its checkpoint kept), or over: complete at the top rung (or
    stopped early by its own run), pruned when the sweep ended with it paused, failed, or
    cancelled."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"


# How the dashboard shows each status. Its English word is the msgid the pages translate
# (``pybabel extract`` reads this dict: app/locale/babel.cfg) ...
STATUS_WORDS: dict[RunStatus, str] = {
    RunStatus.QUEUED: "queued",
    RunStatus.RUNNING: "running",
    RunStatus.FINISHED: "finished",
    RunStatus.FAILED: "failed",
    RunStatus.DIVERGED: "diverged",
    RunStatus.CANCELLED: "cancelled",
    RunStatus.LOST: "lost",
}
# ... and its badge's colour (one of Streamlit's named colours).
STATUS_COLORS: dict[RunStatus, str] = {
    RunStatus.QUEUED: "gray",
    RunStatus.RUNNING: "blue",
    RunStatus.FINISHED: "green",
    RunStatus.FAILED: "red",
    RunStatus.DIVERGED: "orange",
    RunStatus.CANCELLED: "violet",
    RunStatus.LOST: "orange",
}


# The dashboard's languages, by gettext locale name (Babel's and Django's folder names under
# app/locale/), each named in its own script. A new one is an entry here and its catalogue.
LANGUAGES: dict[str, str] = {"en": "English", "zh_Hans": "简体中文", "zh_Hant": "繁體中文"}
