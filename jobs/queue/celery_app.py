"""The Celery app: which broker, which queues, and the settings that matter for long GPU runs.

The database is the source of truth; the broker only delivers run ids. So the settings below
aim at "never lose a message, never let the broker re-run something on its own":

- JSON only: a task message is ``train(run_id)``, nothing that needs pickle.
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged when the run is
  over, so a worker that dies mid-run does not swallow it.
- prefetch of one (and, on Redis, ``worker_disable_prefetch``): a busy worker holds exactly the
  message it is running; queued runs stay in the broker for idle workers to take.
- a visibility timeout longer than any run (Redis): Redis re-delivers an unacknowledged message
  after this long, so it must never fire while the run is alive. Lost workers are handled by our
  own reaper from heartbeats in the database (``jobs.queue.reaper``), which is faster and exact.
- one queue per device class (``cpu``, ``gpu``); the queue a run needs is stored on the run and
  used when it is sent (``jobs.runs.submit.send_run``).

Broker: ``TRAINBOARD_BROKER_URL=redis://…`` on a team server; unset, kombu's filesystem
transport in ``$TRAINBOARD_HOME/broker`` (no Redis, no Docker). The same task code runs on both.

The worker module is ``jobs.queue.celery_app`` (``celery -A jobs.queue.celery_app worker``); ``jobs.queue.worker``
builds the right command line and ``trainboard worker`` runs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from kombu import Queue

from jobs.store.db import data_home

TRAIN_TASK = "jobs.queue.tasks.train"
DEVICE_CLASSES = ("cpu", "gpu")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from e


@dataclass(frozen=True)
class QueueSettings:
    """Everything the queue reads from the environment, read once per call of :func:`settings`.

    Defaults suit real runs; the tests shorten the timings through the same variables.
    """

    home: Path
    broker_url: str | None  # None: the embedded filesystem broker
    queue_prefix: str  # isolates several deployments (or test runs) on one Redis
    heartbeat_s: float  # how often a running run's heartbeat is written
    stale_after_s: float  # a running run without a heartbeat for this long is lost
    reap_interval_s: float  # how often each worker's reaper looks for lost / unsent runs
    resend_after_s: float  # a queued run sent this long ago, with its queue empty, is re-sent
    cancel_poll_s: float  # how often a running engine checks the cancel flag
    visibility_timeout_s: float  # Redis: redeliver an unacked message only after this long
    send_timeout_s: float  # how long a submit waits for the broker before keeping the run queued
    poll_interval_s: float  # embedded broker: how often an idle worker looks for a message

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    def queue_name(self, device_class: str) -> str:
        if device_class not in DEVICE_CLASSES:
            raise ValueError(
                f"unknown queue {device_class!r}; allowed: {', '.join(DEVICE_CLASSES)}"
            )
        return f"{self.queue_prefix}{device_class}"


def settings() -> QueueSettings:
    return QueueSettings(
        home=Path(data_home()),
        broker_url=os.environ.get("TRAINBOARD_BROKER_URL") or None,
        queue_prefix=os.environ.get("TRAINBOARD_QUEUE_PREFIX", ""),
        heartbeat_s=_env_float("TRAINBOARD_HEARTBEAT_S", 5.0),
        stale_after_s=_env_float("TRAINBOARD_STALE_AFTER_S", 60.0),
        reap_interval_s=_env_float("TRAINBOARD_REAP_INTERVAL_S", 10.0),
        resend_after_s=_env_float("TRAINBOARD_RESEND_AFTER_S", 60.0),
        cancel_poll_s=_env_float("TRAINBOARD_CANCEL_POLL_S", 0.5),
        visibility_timeout_s=_env_float("TRAINBOARD_VISIBILITY_TIMEOUT_S", 30 * 24 * 3600.0),
        send_timeout_s=_env_float("TRAINBOARD_SEND_TIMEOUT_S", 3.0),
        poll_interval_s=_env_float("TRAINBOARD_POLL_INTERVAL_S", 0.1),
    )


def embedded_transport_options(s: QueueSettings) -> dict:
    """kombu filesystem transport: one folder is both the in- and the out-box, so every process
    on this machine that uses the same data directory shares one queue."""
    queue_dir = s.broker_dir / "queue"
    control_dir = s.broker_dir / "control"
    # The transport does not create its folders (a put into a missing one fails).
    for d in (queue_dir, control_dir):
        d.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        # control_folder defaults to a path relative to the cwd: pin it to the data directory.
        "control_folder": str(control_dir),
        "store_processed": False,
        "polling_interval": s.poll_interval_s,
    }


def redis_transport_options(s: QueueSettings) -> dict:
    opts: dict = {
        "visibility_timeout": s.visibility_timeout_s,
        # A submit must not hang when Redis is unreachable; it keeps the run queued instead.
        "socket_connect_timeout": s.send_timeout_s,
    }
    if s.queue_prefix:
        opts["global_keyprefix"] = s.queue_prefix
    return opts


def make_app(s: QueueSettings | None = None) -> Celery:
    s = s or settings()
    app = Celery("trainboard", include=["jobs.queue.tasks"])
    if s.embedded:
        broker_url = "filesystem://"
        transport_options = embedded_transport_options(s)
    else:
        broker_url = s.broker_url
        transport_options = redis_transport_options(s)
    queues = tuple(Queue(s.queue_name(c)) for c in DEVICE_CLASSES)
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        # No result backend: outcomes live in the runs table.
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=not s.embedded,  # only meaningful (and allowed) on Redis
        # A Redis blip must not kill a run that is computing happily.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_queues=queues,
        task_default_queue=s.queue_name("cpu"),
        task_routes={TRAIN_TASK: {"queue": s.queue_name("cpu")}},
        task_create_missing_queues=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        timezone="UTC",
    )
    app.trainboard_settings = s
    return app


_apps: dict[QueueSettings, Celery] = {}


def current_app() -> Celery:
    """The app for the current environment (cached per settings, so a test that points
    ``TRAINBOARD_HOME`` elsewhere gets a fresh one). Tasks are ``shared_task``s, so every app
    made here knows them."""
    s = settings()
    if s not in _apps:
        _apps[s] = make_app(s)
    return _apps[s]


def __getattr__(name: str) -> Celery:
    # ``celery -A jobs.queue.celery_app`` looks up ``app`` here; building it lazily keeps a plain
    # ``import jobs.queue.celery_app`` free of side effects (no broker folders made at import).
    if name == "app":
        return current_app()
    raise AttributeError(name)
