"""Queue benchmark: submit→running latency, and a burst of tiny runs.

    .venv/bin/python bench/queue.py                      # both brokers
    .venv/bin/python bench/queue.py --broker embedded --samples 20 --burst 200 --workers 2
    .venv/bin/python bench/queue.py --quick              # smoke run: embedded broker, tiny counts

For each broker (Redis at TRAINBOARD_BENCH_REDIS_URL, default redis://127.0.0.1:6379/0, under
a unique key prefix; and the embedded filesystem broker) it starts real workers in a temporary
data directory and measures

1. latency: with an idle worker, the time from calling ``submit()`` to the run's claim
   (``started_at``, status ``running``), over ``--samples`` one-at-a-time runs;
2. burst: ``--burst`` tiny runs submitted at once; all must reach a final state, none lost,
   none run twice (attempt 1 and exactly one ``run_start`` event each).

Targets (issue 4): Redis median ≤ 0.5 s, embedded median ≤ 1 s.

``--quick`` is a smoke run (under a minute on 2 cores): the embedded broker only unless
``--broker`` names one, QUICK's sample, burst and worker counts unless given, one wine run and
shorter waits for the workers' warm spare runners (so its latencies may run high).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# This file is named like the standard library's `queue`, which Celery imports (lazily, from
# the functions below): take its folder off the import path (Python puts a script's folder
# first) and put the project root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
ROOT = _HERE.parent
sys.path.insert(0, str(ROOT))

QUICK = {"samples": 1, "burst": 2, "workers": 2}

TINY = {
    "train.epochs": 1,
    "train.preflight": False,
    "train.overfit_one_batch": False,
    "data.max_rows": 100,
}


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(q * (len(xs) - 1))))
    return xs[k]


def _start_workers(n: int, env: dict[str, str], home: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        log = open(home / f"bench-worker{i}.log", "ab")  # noqa: SIM115 (lives as long as it)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jobs.cli",
                    "worker",
                    "--name",
                    f"bench{i}@local",
                    "--loglevel",
                    "WARNING",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
        )
    return procs


def _stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def bench(broker: str, samples: int, burst: int, workers: int, quick: bool = False) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"tb-bench-{broker}-"))
    env = {**os.environ, "TRAINBOARD_HOME": str(home), "TRAINBOARD_HEARTBEAT_S": "1"}
    env.pop("TRAINBOARD_BROKER_URL", None)
    if broker == "redis":
        env["TRAINBOARD_BROKER_URL"] = os.environ.get(
            "TRAINBOARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"
        )
        env["TRAINBOARD_QUEUE_PREFIX"] = f"tbbench-{uuid.uuid4().hex[:8]}."
    os.environ.clear()
    os.environ.update(env)

    from jobs.datasets import ingest as datasets
    from jobs.runs.submit import submit
    from jobs.store import registry
    from jobs.store.db import connect

    db = connect()
    procs = _start_workers(workers, env, home)
    try:
        deadline = time.monotonic() + 60
        while len(registry.list_workers(db, alive_within_s=5)) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not come up")
            time.sleep(0.1)
        # Let each worker's warm spare runner finish importing torch (--quick: the warm-up below,
        # which imports it here too, is the wait).
        time.sleep(0 if quick else 8)

        def wait_final(ids: list[int], timeout: float) -> None:
            deadline = time.monotonic() + timeout
            marks = ",".join("?" * len(ids))
            while True:
                left = db.execute(
                    f"SELECT count(*) FROM runs WHERE id IN ({marks}) AND status NOT IN "
                    f"('finished','failed','diverged','cancelled')",
                    ids,
                ).fetchone()[0]
                if not left:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{left} runs not final after {timeout} s")
                time.sleep(0.2)

        # Warm up this process (the first submit imports the engine's config code).
        from engine.config import resolve_config

        resolve_config("quick", dataset="builtin:digits", overrides=TINY)
        if quick:  # and register the sample now: its first submit loads it (seconds), which
            # the median of the full run's samples absorbs but one sample does not
            datasets.register_builtin(db, "builtin:digits")
        latencies = []
        for _ in range(samples):
            t0 = time.time()
            run_id = submit("quick", "builtin:digits", overrides=TINY, db=db).run_id
            while True:
                run = registry.get_run(db, run_id)
                if run["started_at"]:
                    latencies.append(run["started_at"] - t0)
                    break
                time.sleep(0.005)
            wait_final([run_id], 120)
            # Idle again: the task is over (its run's process has exited), not just the run.
            while db.execute(
                "SELECT count(*) FROM workers WHERE current_run IS NOT NULL AND status != 'stopped'"
            ).fetchone()[0]:
                time.sleep(0.05)
            time.sleep(0.5)

        # A beginner's first run: the default preset on sklearn's wine table (178 rows),
        # submit → running → finished, through the queue with a warm spare runner.
        # Registered first, as an upload is (submit takes only a registered dataset).
        wine = home / "wine.csv"
        _wine_csv(wine)
        with wine.open("rb") as f:
            ds = datasets.ingest(db, f, wine.name, target="target")
        to_running, to_finished = [], []
        for _ in range(1 if quick else max(3, samples // 4)):
            t0 = time.time()
            run_id = submit(
                "sutskever",
                ds["path"],
                target=ds["target"],
                dataset_id=ds["id"],
                info=ds["report"],
                db=db,
            ).run_id
            while not (run := registry.get_run(db, run_id))["started_at"]:
                time.sleep(0.005)
            to_running.append(run["started_at"] - t0)
            wait_final([run_id], 300)
            to_finished.append(registry.get_run(db, run_id)["finished_at"] - t0)
            while db.execute(
                "SELECT count(*) FROM workers WHERE current_run IS NOT NULL AND status != 'stopped'"
            ).fetchone()[0]:
                time.sleep(0.05)
            time.sleep(0 if quick else 2)  # the next warm spare imports torch

        t0 = time.monotonic()
        ids = [
            submit("quick", "builtin:digits", overrides=TINY, db=db).run_id for _ in range(burst)
        ]
        submit_s = time.monotonic() - t0
        wait_final(ids, 60 * 60)
        burst_s = time.monotonic() - t0
        marks = ",".join("?" * len(ids))
        statuses = dict(
            db.execute(
                f"SELECT status, count(*) FROM runs WHERE id IN ({marks}) GROUP BY status", ids
            ).fetchall()
        )
        twice = db.execute(
            f"SELECT count(*) FROM runs WHERE id IN ({marks}) AND attempt != 1", ids
        ).fetchone()[0]
        starts = db.execute(
            f"SELECT count(*) FROM (SELECT run_id FROM events WHERE run_id IN ({marks}) "
            f"AND kind = 'run_start' GROUP BY run_id HAVING count(*) != 1)",
            ids,
        ).fetchone()[0]
    finally:
        _stop_workers(procs)
    return {
        "broker": broker,
        "workers": workers,
        "latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(_percentile(latencies, 0.95), 3) if latencies else None,
        "latency_samples": len(latencies),
        "wine_to_running_median_s": round(statistics.median(to_running), 3),
        "wine_to_finished_median_s": round(statistics.median(to_finished), 3),
        "burst": burst,
        "burst_submit_s": round(submit_s, 2),
        "burst_total_s": round(burst_s, 1),
        "burst_statuses": statuses,
        "burst_not_attempt_1": twice,
        "burst_not_one_run_start": starts,
        "home": str(home),
    }


def _wine_csv(path: Path) -> None:
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(path, index=False)


def _exit_on_sigterm() -> None:
    # SIGTERM (e.g. from `timeout`) unwinds through the `finally` that stops the workers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main() -> int:
    _exit_on_sigterm()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--broker", choices=("both", "redis", "embedded"), default=None, help="default both"
    )
    p.add_argument(
        "--samples", type=int, default=None, help=f"default 20 ({QUICK['samples']}: --quick)"
    )
    p.add_argument(
        "--burst", type=int, default=None, help=f"default 200 ({QUICK['burst']}: --quick)"
    )
    p.add_argument(
        "--workers", type=int, default=None, help=f"default 2 ({QUICK['workers']}: --quick)"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: embedded broker, tiny counts")
    args = p.parse_args()
    if args.broker is None:
        args.broker = "embedded" if args.quick else "both"
    for name, full in (("samples", 20), ("burst", 200), ("workers", 2)):
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else full)
    brokers = ("redis", "embedded") if args.broker == "both" else (args.broker,)
    results = []
    for b in brokers:
        # Each broker in its own process: settings are read from the environment.
        inner = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--one",
                b,
                str(args.samples),
                str(args.burst),
                str(args.workers),
                *(["--quick"] if args.quick else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            stdout, _ = inner.communicate()
        finally:
            if inner.poll() is None:  # interrupted: let it stop its workers
                inner.terminate()
                inner.wait(timeout=60)
        if inner.returncode != 0:
            print(stdout, file=sys.stderr)
            return 1
        results.append(json.loads(stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print()
    print(f"{'broker':<9} {'median':>7} {'p95':>7}  burst")
    for r in results:
        ok = r["burst_statuses"].get("finished", 0)
        print(
            f"{r['broker']:<9} {r['latency_median_s']:>6.3f}s {r['latency_p95_s']:>6.3f}s  "
            f"{ok}/{r['burst']} finished in {r['burst_total_s']} s on {r['workers']} workers, "
            f"{r['burst_not_attempt_1']} re-run, {r['burst_not_one_run_start']} started twice"
        )
    print()
    print("wine (178 rows, default preset) through the queue, median:")
    for r in results:
        ok = "PASS" if r["wine_to_running_median_s"] <= 0.5 else "MISS"
        print(
            f"  {r['broker']:<9} submit → running {r['wine_to_running_median_s']:.3f} s "
            f"(target ≤ 0.5 s: {ok}), submit → finished {r['wine_to_finished_median_s']:.2f} s"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) in (6, 7) and sys.argv[1] == "--one":
        _exit_on_sigterm()
        _, _, b, n, burst, w = sys.argv[:6]
        print(json.dumps(bench(b, int(n), int(burst), int(w), quick=sys.argv[6:] == ["--quick"])))
        sys.exit(0)
    sys.exit(main())
