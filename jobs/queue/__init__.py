"""The queue: Celery delivers run ids; the database (``jobs.store``) stays the source of truth.

- ``celery_app``  the Celery app, its settings, the embedded (file) and Redis brokers
- ``sends``       sending a run id to the broker, and the ``queue_sends`` bookkeeping
- ``tasks``       the ``train(run_id)`` task: claim, start a runner process, watch, conclude
- ``watch``       the loop that watches a run's process (heartbeat, cancel, shutdown), local or remote
- ``spare``       the warm spare runner process a worker keeps ready
- ``presence``    who this worker is (name, device, queues), reported to the ``workers`` table
- ``worker``      starting a worker, and its housekeeping thread (presence + reaper)
- ``runner``      one run in its own process: the engine with a store channel as its sink
- ``reaper``      stale heartbeats → lost → requeued; unsent queued runs → sent again
"""
