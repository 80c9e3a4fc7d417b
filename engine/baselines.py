"""Honest reference scores: scikit-learn's linear model and gradient-boosted trees, fitted on a
run's own training split and scored once on its own test split (issue 20, §5).

A beginner can't tell whether 0.78 is good. "A gradient-boosted tree scores 0.83 on this split"
tells them, and never hides a weaker net. The baselines see exactly what the net sees: the
prepared training rows (one-hot text, the column-type pass, median imputation, log1p and
standardization fitted on the training split), with scikit-learn's default settings. Only
tables get them (images and sequences have no fair default here).

scikit-learn costs a fresh process 0.7–1 s to import (scipy.stats, through sklearn.utils), as
much as training a small table. So :class:`Baselines` fits a small table's baselines in a
child process started when training starts: its import and its fit run on an idle core while
the net trains, and the run collects the result at the end (issue 20, §7). Only an idle core
makes that pay: on a busy machine the child took CPU from training (a wine run's training went
from 1,900 to 790 samples/s with the load average at 10 on 2 cores, and the run took 3 s longer).
So a large table, a busy machine (no core idle by the load average), or a process that has
scikit-learn already (the queue's warmed standby runner) fits them in the run's own process when
it ends, as :func:`fit_baselines`. Both give the same numbers (a test checks).
The child can start earlier still: :func:`prewarm`, called by ``trainboard train`` before it
parses its arguments, starts it when the command begins, so scikit-learn's import runs on the
idle core while the run imports torch (1.2 s), and the child only fits once the data is ready.
That hides the whole import: on wine the fit itself is 0.05 s. A run that turns out to need no
baselines (an image table) or a machine that got busy costs the child's import on a core that
was idle, and :func:`release_prewarmed` ends it.
This module imports only numpy at the top, so the child loads it by its path without the
engine or torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

MAX_FIT_ROWS = 50_000  # larger training splits: the baselines fit on a seeded sample of this many
# Tables up to this many cells (training and test rows × columns, 4 MB as float32) are fitted
# beside training: their fit takes a fraction of a second on one core. Larger ones fit at the
# end, in the run's own process, so a long fit never competes with training for the cores.
SIDE_MAX_CELLS = 1_000_000
# The child's thread pools: one thread, as the fit itself (threadpool_limits below).
_ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
_CHILD = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_trainboard_baselines', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(mod)\n"
    "mod._serve()\n"
)


def fit_baselines(data: Any, *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``{"linear": {...}, "gbm": {...}}``, each with its model's name, ``test_metric`` (the
    run's own metric: accuracy, or RMSE in the target's units), ``test_balanced_accuracy`` for
    classification, ``fit_rows`` and ``seconds``. {} when the data is not a table or has no
    test split. Fitted here, in this process."""
    job = _job(data, seed)
    return {} if job is None else _fit(**job)


def _job(data: Any, seed: int) -> dict[str, Any] | None:
    """The arrays and settings a fit needs, as numpy; None when there is nothing to fit."""
    if data.modality != "tabular" or data.x_test is None or len(data.x_test) == 0:
        return None
    x = data.x_train.detach().cpu().numpy()
    y = data.y_train.detach().cpu().numpy()
    if len(x) > MAX_FIT_ROWS:
        keep = np.random.default_rng(seed).choice(len(x), MAX_FIT_ROWS, replace=False)
        x, y = x[keep], y[keep]
    return {
        "x": x,
        "y": y,
        "xt": data.x_test.detach().cpu().numpy(),
        "yt": data.y_test.detach().cpu().numpy(),
        "classify": data.task == "classification",
        "scale": float(data.y_std or 1.0),
        "seed": int(seed),
    }


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    xt: np.ndarray,
    yt: np.ndarray,
    *,
    classify: bool,
    scale: float,
    seed: int,
) -> dict[str, dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import balanced_accuracy_score
    from threadpoolctl import threadpool_limits

    x, xt = x.astype(np.float64), xt.astype(np.float64)
    models = (
        {
            "linear": ("logistic regression", LogisticRegression(max_iter=2000)),
            "gbm": ("gradient-boosted trees", HistGradientBoostingClassifier(random_state=seed)),
        }
        if classify
        else {
            "linear": ("ridge regression", Ridge()),
            "gbm": ("gradient-boosted trees", HistGradientBoostingRegressor(random_state=seed)),
        }
    )
    out: dict[str, dict[str, Any]] = {}
    for key, (name, model) in models.items():
        t0 = time.perf_counter()
        if classify and len(np.unique(y)) < 2:
            continue
        # One thread: the run's worker slot owns its cores, and OpenMP's own pool fighting
        # torch's for them made a 569-row fit take seconds instead of a fraction of one.
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)  # an unconverged fit still scores
            model.fit(x, y)
        pred = model.predict(xt)
        row: dict[str, Any] = {"model": name, "fit_rows": int(len(x))}
        if classify:
            row["test_metric"] = float(np.mean(pred == yt))
            row["test_balanced_accuracy"] = float(balanced_accuracy_score(yt, pred))
        else:
            row["test_metric"] = float(np.sqrt(np.mean((pred - yt) ** 2)) * scale)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        out[key] = row
    return out


class Baselines:
    """A run's baselines, started with its training: :meth:`result` when the run has finished
    (the same dict as :func:`fit_baselines`), :meth:`close` in every case (it ends a child
    whose result nobody collected). ``side``: None decides as the module docstring says;
    True / False forces the child / this process (tests)."""

    def __init__(self, data: Any, *, seed: int = 0, side: bool | None = None) -> None:
        self._job = _job(data, seed)
        self._proc: subprocess.Popen[bytes] | None = None
        warm = _take_prewarmed()
        # A prewarmed child that a large table's fit waits for until the run ends.
        self._later: subprocess.Popen[bytes] | None = None
        if self._job is None:
            _end(warm)
            return
        small = self._job["x"].size + self._job["xt"].size <= SIDE_MAX_CELLS
        if side is None and warm is not None:
            # scikit-learn is loaded there already: a small table fits now, beside training;
            # a large one at the end, so a long fit never takes a core from training.
            if small:
                self._proc = _send(warm, self._job)
            else:
                self._later = warm
            return
        _end(warm)
        if side is None:
            side = "sklearn" not in sys.modules and small and _idle_core()
        if side:
            self._proc = _send(_spawn(), self._job)

    @property
    def beside(self) -> bool:
        """Whether a child process is fitting them."""
        return self._proc is not None

    def result(self) -> dict[str, dict[str, Any]]:
        if self._job is None:
            return {}
        if self._later is not None:
            self._proc, self._later = _send(self._later, self._job), None
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                assert proc.stdout is not None
                with proc.stdout:
                    out = proc.stdout.read()  # stderr goes nowhere, so this can't block on it
                if proc.wait() == 0:
                    return json.loads(out)
            except (OSError, ValueError):
                pass
            # The child failed (it was killed, or could not import scikit-learn): fit here, so
            # the run reports its baselines all the same, or fails the way it always did.
        return _fit(**self._job)

    def close(self) -> None:
        for proc in (self._proc, self._later):
            _end(proc)
        self._proc = self._later = None


_PREWARMED: subprocess.Popen[bytes] | None = None  # started by prewarm(), not yet claimed


def prewarm() -> bool:
    """Start the baselines' child now, before the run knows its data, when a core is idle and
    this process has no scikit-learn yet; the next :class:`Baselines` hands it its job. Whether
    a child is waiting."""
    global _PREWARMED
    if _PREWARMED is None and "sklearn" not in sys.modules and _idle_core():
        _PREWARMED = _spawn()
    return _PREWARMED is not None


def release_prewarmed() -> None:
    """End a prewarmed child that no run claimed (baselines off, not a table, a refused run)."""
    _end(_take_prewarmed())


def _take_prewarmed() -> subprocess.Popen[bytes] | None:
    global _PREWARMED
    proc, _PREWARMED = _PREWARMED, None
    if proc is not None and proc.poll() is not None:  # it died: there is nothing to claim
        _end(proc)
        return None
    return proc


def _end(proc: subprocess.Popen[bytes] | None) -> None:
    """Kill a child (if it runs still) and close its pipes."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


IDLE_SAMPLES = 5  # readings of the runnable count, IDLE_GAP_S apart; the fewest counts
IDLE_GAP_S = 0.002


def _idle_core() -> bool:
    """Whether a core is idle beside this process: the tasks other processes have runnable
    (the kernel's count in /proc/loadavg less this process's own runnable threads: numpy's
    BLAS threads spin for a while after its import) leave a core free beside this one, in the
    fewest of a few readings over 10 ms (a process that just started this one is still
    runnable for a moment as it goes back to waiting); and the 1-minute load average is below
    the number of cores, so a machine busy on average but quiet this instant does not count.
    A heuristic, not a reservation.

    The count decides because the load average lags: a run started right after another (a
    user's second run, a benchmark's next process) saw the first one's load for a minute and
    fitted in-process, 0.7 s slower, with a core idle (issue 20, §7)."""
    cores = os.cpu_count() or 1
    try:
        others = []
        for i in range(IDLE_SAMPLES):
            if i:
                time.sleep(IDLE_GAP_S)
            fields = Path("/proc/loadavg").read_text().split()
            others.append(int(fields[3].split("/")[0]) - _own_runnable())
        load = float(fields[0])
    except (OSError, IndexError, ValueError):  # not Linux: the load average alone, as before
        try:
            return os.getloadavg()[0] <= cores - 1
        except OSError:  # no load average on this platform
            return False
    return _idle(others, load, cores)


def _idle(others: list[int], load: float, cores: int) -> bool:
    """The rule of :func:`_idle_core` on its readings: other processes' runnable tasks (the
    fewest seen), the 1-minute load average and the number of cores."""
    return min(others) + 1 <= cores - 1 and load < cores


def _own_runnable() -> int:
    """This process's threads in the running state, this one included."""
    n = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, IndexError):  # a thread that just ended
            n += (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R"
    return max(n, 1)


def _spawn() -> subprocess.Popen[bytes] | None:
    """A child that loads this file by its path and imports scikit-learn at once, then fits the
    job :func:`_send` writes to its stdin and prints the result (an empty stdin: nothing)."""
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=os.environ | _ONE_THREAD,
        )
    except OSError:
        return None


def _send(
    proc: subprocess.Popen[bytes] | None, job: dict[str, Any]
) -> subprocess.Popen[bytes] | None:
    """Hand a child its job; the child (or None: none could start, result() fits here)."""
    if proc is None:
        return None
    buf = io.BytesIO()
    settings = {k: job[k] for k in ("classify", "scale", "seed")}
    arrays = {k: job[k] for k in ("x", "y", "xt", "yt")}
    np.savez(buf, settings=np.array(json.dumps(settings)), **arrays)
    assert proc.stdin is not None
    try:
        # Small by SIDE_MAX_CELLS, or sent at the end; the child reads its stdin in a thread
        # beside its imports, so this write does not wait for them.
        proc.stdin.write(buf.getvalue())
        proc.stdin.close()
    except OSError:  # the child is gone already: result() fits here
        pass
    return proc


def _serve() -> None:
    """The child's side of :func:`_spawn`: its stdin read in a thread while scikit-learn
    imports, so the parent's write never waits for the import."""
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(sys.stdin.buffer.read()), daemon=True)
    reader.start()
    import sklearn.ensemble  # noqa: F401  (the slow part: _fit's imports, done ahead)
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401

    reader.join()
    if not box or not box[0]:
        return  # released: the run needed no baselines
    with np.load(io.BytesIO(box[0]), allow_pickle=False) as f:
        job = {k: f[k] for k in f.files}
    settings = json.loads(str(job.pop("settings")))
    sys.stdout.write(json.dumps(_fit(**job, **settings)))
