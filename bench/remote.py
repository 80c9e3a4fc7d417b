"""Workers on other hosts (issue 22): the remote path's throughput against the local writer's,
submit → running for a remote worker, and how fast the spool drains after an outage.

    .venv/bin/python bench/remote.py            # 1,000,000 points, a 60 s outage, 5 submits
    .venv/bin/python bench/remote.py --quick    # smoke run: 100,000 points, a 3 s outage, 1 submit

In one invocation, on this machine:

- **local**: ``MetricWriter`` into SQLite, as a run on the server's own host writes (the baseline);
- **remote**: the same points through ``RemoteChannel`` → the worker's spool → HTTP → the ingest
  (``jobs.remote.server``, its own process) → SQLite, timed until the server has acknowledged the
  last record; the channel and the flusher share this process, as a run and its worker share
  the worker's host;
- **drain**: the ingest is stopped, a run logs at a training pace for the outage (60 s; 3 s in
  quick mode) into the spool, the ingest comes back, and the spool is timed until it is empty;
- **submit → running**: a real remote worker (``trainboard worker`` with ``TRAINBOARD_SERVER``
  and a token) on Redis (TRAINBOARD_TEST_REDIS_URL, else 127.0.0.1:6379; skipped without one).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# Run as a script, Python puts bench/ first on sys.path, where bench/queue.py would shadow the
# standard library's queue module (urllib3 needs it): the repository root instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from jobs.remote import tokens  # noqa: E402
from jobs.remote.channel import RemoteChannel  # noqa: E402
from jobs.remote.client import Client  # noqa: E402
from jobs.remote.spool import Spool  # noqa: E402
from jobs.remote.worker import Flusher  # noqa: E402
from jobs.store import registry  # noqa: E402
from jobs.store.db import connect  # noqa: E402
from jobs.store.writer import MetricWriter  # noqa: E402
from tests.remote_helpers import Ingest  # noqa: E402

KEYS = ("train/loss", "lr", "grad_norm", "ratio/fc1.weight", "ratio/fc2.weight")


def _values(step: int) -> dict[str, float]:
    return {k: math.sin(step * 1e-3 + i) for i, k in enumerate(KEYS)}


def local(home: Path, steps: int) -> float:
    db = connect(home / "trainboard.db")
    run_id = registry.create_run(db, spec={}, preset="bench")
    t0 = time.perf_counter()
    with MetricWriter(home / "trainboard.db", run_id) as w:
        for s in range(steps):
            w.log(s, _values(s))
    return time.perf_counter() - t0


def _hand_out(db, client: Client, worker_home: Path) -> int:
    run_id = registry.create_run(db, spec={}, preset="bench")
    got = client.post("/claim", {"run_id": run_id, "slot": "bench", "device": "cpu"})
    Spool(worker_home).start_run(run_id, got["attempt"], got)
    return run_id


def _drained(worker_home: Path, timeout: float) -> None:
    spool = Spool(worker_home)
    deadline = time.monotonic() + timeout
    try:
        while spool.backlog()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError("the spool did not drain")
            time.sleep(0.01)
    finally:
        spool.close()


def remote(db, client: Client, worker_home: Path, steps: int) -> float:
    run_id = _hand_out(db, client, worker_home)
    fl = Flusher(client, worker_home, interval=0.05).start()
    try:
        t0 = time.perf_counter()
        with RemoteChannel(run_id, home=worker_home) as ch:
            for s in range(steps):
                ch.log(s, _values(s))
        _drained(worker_home, 600)
        return time.perf_counter() - t0
    finally:
        fl.close()


def drain(db, client: Client, ingest: Ingest, worker_home: Path, outage_s: float) -> dict:
    run_id = _hand_out(db, client, worker_home)
    fl = Flusher(client, worker_home, interval=0.05).start()
    pace = 2_000  # steps per second: a fast training loop's logging
    try:
        ingest.stop()
        with RemoteChannel(run_id, home=worker_home) as ch:
            t0, s = time.monotonic(), 0
            while time.monotonic() - t0 < outage_s:
                for _ in range(pace // 20):
                    ch.log(s, _values(s))
                    s += 1
                time.sleep(0.05)
            ch.flush()
        backlog = Spool(worker_home).backlog()[1]
        ingest.start()
        t1 = time.perf_counter()
        fl.wake.set()
        _drained(worker_home, 600)
        return {"points": backlog, "seconds": time.perf_counter() - t1}
    finally:
        fl.close()


def submit_latency(tmp: Path, db, server_url: str, samples: int) -> list[float] | str:
    import redis

    from jobs.runs.submit import submit
    from tests.queue_helpers import TINY, queue_prefix, redis_url_from_env

    url = redis_url_from_env()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping()
    except redis.RedisError:
        return f"skipped (no Redis at {url})"
    prefix = queue_prefix()
    os.environ.update(TRAINBOARD_BROKER_URL=url, TRAINBOARD_QUEUE_PREFIX=prefix)
    home = tmp / "latency-worker"
    env = {
        **os.environ,
        "TRAINBOARD_HOME": str(home),
        "TRAINBOARD_SERVER": server_url,
        "TRAINBOARD_WORKER_TOKEN": tokens.create(db, "bench-latency"),
        "TRAINBOARD_HEARTBEAT_S": "0.5",
    }
    log = tmp / "latency-worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "worker", "--loglevel", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                return "skipped (the remote worker did not start)"
            time.sleep(0.2)
        time.sleep(3)  # its warm spare runner imports torch first
        out = []
        for _ in range(samples):
            t0 = time.perf_counter()
            run_id = submit(
                "quick", "builtin:digits", overrides={**TINY, "train.epochs": 1}, db=db
            ).run_id
            while registry.get_run(db, run_id)["status"] == "queued":
                time.sleep(0.01)
            out.append(time.perf_counter() - t0)
            while registry.get_run(db, run_id)["status"] == "running":
                time.sleep(0.1)
            time.sleep(3)  # the next warm spare
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: small counts, short outage")
    args = p.parse_args()
    steps = 20_000 if args.quick else 200_000
    outage_s = 3.0 if args.quick else 60.0
    samples = 1 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="tb-bench-remote-") as tmp_name:
        tmp = Path(tmp_name)
        server_home, worker_home = tmp / "server", tmp / "worker"
        os.environ["TRAINBOARD_HOME"] = str(server_home)
        os.environ.pop("TRAINBOARD_BROKER_URL", None)
        db = connect()
        client = Client("http://127.0.0.1", tokens.create(db, "bench"))
        ingest = Ingest(server_home, tmp / "ingest.log")
        client.base = ingest.url + "/api/worker"
        ingest.start()
        try:
            t_local = local(tmp / "local", steps)
            t_remote = remote(db, client, worker_home, steps)
            drained = drain(db, client, ingest, worker_home, outage_s)
            latency = submit_latency(tmp, db, ingest.url, samples)
        finally:
            ingest.stop()
    n = steps * len(KEYS)
    lr, rr = n / t_local, n / t_remote
    print(f"{n:,} points ({steps:,} steps × {len(KEYS)} keys)")
    print(f"{'path':<44}{'points/s':>12}{'vs local':>10}")
    print(f"{'local: MetricWriter → SQLite':<44}{lr:>12,.0f}{1:>9.2f}×")
    print(f"{'remote: spool → HTTP → ingest → SQLite':<44}{rr:>12,.0f}{rr / lr:>9.2f}×")
    goal = "PASS" if rr / lr >= 0.5 and rr >= 200_000 else "MISS"
    print(f"remote/local = {rr / lr:.2f}× (goal ≥ 0.5× and ≥ 200,000 points/s): {goal}")
    rate = drained["points"] / drained["seconds"] if drained["seconds"] else float("inf")
    print(
        f"outage of {outage_s:g} s: {drained['points']:,} points spooled, drained in "
        f"{drained['seconds']:.2f} s ({rate:,.0f} points/s) once the server was back"
    )
    if isinstance(latency, str):
        print(f"remote worker submit → running: {latency}")
    else:
        lat = sorted(latency)
        print(
            f"remote worker submit → running: median {lat[len(lat) // 2]:.2f} s, "
            f"max {lat[-1]:.2f} s over {len(lat)} run(s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
