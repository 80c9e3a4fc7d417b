"""The store: one SQLite file (WAL) holding runs, datasets, users, metrics and events.

- ``db``        connection, data directory, schema migrations
- ``registry``  runs, datasets and workers: their records and lifecycle transitions
- ``writer``    the batched metric writer (the engine's sink, via ``jobs.store.channel``)
- ``reader``    series for charts (downsampled), events, metric keys, export
- ``channel``   the one narrow interface a run's process uses to talk to the store
- ``people``    users, sessions, login attempts and per-user settings (the statements that need a
                transaction; ``jobs.people.auth`` and ``jobs.service`` call them)
- ``sends``     ``queue_sends``, each send of a run to the broker (``jobs.queue.sends`` calls it)
- ``remote``    workers on other hosts: tokens, each attempt's record high-water mark, shipped
                files, and a remote chunk's write in one transaction (``jobs.remote`` calls it)

The store owns the tables: outside it, code calls these functions or sqlite-utils' table API
(``get``, ``rows_where``, ``count_where``, ``upsert``, ``delete_where``), not hand-written SQL
(``tests/test_architecture.py`` counts what is left).
"""
