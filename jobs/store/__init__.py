"""The store: one SQLite file (WAL) holding runs, datasets, users, metrics and events.

- ``db``        connection, data directory, schema migrations
- ``registry``  runs, datasets and workers: their records and lifecycle transitions
- ``writer``    the batched metric writer (the engine's sink, via ``jobs.store.channel``)
- ``reader``    series for charts (downsampled), events, metric keys, export
- ``channel``   the one narrow interface a run's process uses to talk to the store
"""
