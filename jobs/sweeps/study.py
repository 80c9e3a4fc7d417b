"""The Optuna side of a sweep: one study per sweep, stored in SQLite beside the store.

``$TRAINBOARD_HOME/sweeps.db`` through Optuna's ``RDBStorage`` (SQLAlchemy over SQLite): no
server, no network, and it outlives every process, so the controller can ask and tell from
whichever worker holds the sweep's lease. Optuna is imported only here, and only when a sweep
is stepped or read.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

from jobs.store.db import data_home
from jobs.sweeps.space import Dim

STORAGE_FILE = "sweeps.db"
# The random trials TPE starts from, at most: a quarter of a small sweep's budget, so a
# 12-trial sweep already samples 9 of them from what the first 3 taught it.
STARTUP_TRIALS = 10


@functools.cache  # one engine per file and process: creating one checks the schema
def _storage(path: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.storages.RDBStorage(
        f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 30}}
    )


def storage(home: Path | str | None = None) -> Any:
    home = Path(home if home is not None else data_home())
    home.mkdir(parents=True, exist_ok=True)
    return _storage(str((home / STORAGE_FILE).resolve()))


def study_name(sweep_id: int) -> str:
    return f"trainboard-sweep-{sweep_id}"


def distributions(dims: list[Dim]) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for d in dims:
        if d.kind == "choice":
            out[d.field] = CategoricalDistribution(list(d.choices))
        elif d.kind == "int":
            out[d.field] = IntDistribution(int(d.low), int(d.high), log=d.log)
        else:
            out[d.field] = FloatDistribution(d.low, d.high, log=d.log)
    return out


def open_study(sweep_id: int, direction: str, *, seed: int | None = None) -> Any:
    """The sweep's study (created on first use). ``seed``: the sampler's, given per ask, since
    a sampler made afresh with one fixed seed would draw the same point every time."""
    import optuna

    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=STARTUP_TRIALS, constant_liar=True
    )
    with warnings.catch_warnings():  # constant_liar is marked experimental in some versions
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.create_study(
            storage=storage(),
            study_name=study_name(sweep_id),
            direction=direction,
            sampler=sampler,
            load_if_exists=True,
        )


def ask(study: Any, dims: list[Dim]) -> tuple[int, dict[str, Any]]:
    """A new trial: its number and its parameters (JSON-ready: numpy scalars made plain)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        trial = study.ask(distributions(dims))
    params = {k: v.item() if hasattr(v, "item") else v for k, v in trial.params.items()}
    return trial.number, params


def _trial(study: Any, number: int) -> Any:
    import optuna

    st = storage()  # the one storage every study here uses (public storage API below)
    trial_id = st.get_trial_id_from_study_id_trial_number(
        st.get_study_id_from_name(study.study_name), number
    )
    return optuna.trial.Trial(study, trial_id), st.get_trial(trial_id)


def report(study: Any, number: int, epochs: int, value: float) -> None:
    """A trial's score at a rung, as an intermediate value at step = epochs (TPE reads them
    for pruned trials); a value already there is left alone, so a repeated step is harmless."""
    trial, frozen = _trial(study, number)
    if frozen.state.is_finished() or epochs in frozen.intermediate_values:
        return
    trial.report(value, epochs)


def tell(study: Any, number: int, state: str, value: float | None = None) -> None:
    """End a trial in the study: ``complete`` (with its value), ``pruned`` (its last rung's
    value stands) or ``fail``. Telling a finished trial again does nothing."""
    from optuna.trial import TrialState

    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}
    values = value if state == "complete" else None
    study.tell(number, values, state=states[state], skip_if_finished=True)


def orphans(study: Any, known: set[int]) -> list[int]:
    """Trials the study holds as running that the store does not know (a controller died
    between ask and recording the trial): told as failed by the caller."""
    from optuna.trial import TrialState

    return [
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.number not in known
    ]


# Parameter importance needs a few trials that finished the whole budget with different values.
MIN_FOR_IMPORTANCE = 3


def importance(sweep_id: int, direction: str) -> dict[str, float] | None:
    """Optuna's parameter importances (fANOVA, normalised to sum to 1) over the trials that
    completed; None until at least :data:`MIN_FOR_IMPORTANCE` did."""
    import optuna
    from optuna.trial import TrialState

    study = open_study(sweep_id, direction)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < MIN_FOR_IMPORTANCE:
        return None
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError):  # e.g. every completed trial had the same parameters
        return None
