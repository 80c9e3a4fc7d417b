"""Sweeps (issue 23 §3): an Optuna search whose trials are ordinary runs through the queue.

space.py parses and validates the search space (config fields only, the same checks as a run),
asha.py holds the rungs and the promotion rule as pure functions, study.py is the Optuna side
(ask/tell in SQLite beside the store), controller.py creates a sweep and steps it (ask, queue,
pause at a rung, promote, tell), views.py what the Sweeps page shows.
"""
