"""The GPU path. `nvidia-smi` parsing runs anywhere, against recorded outputs (tests/gpu/);
the tests that need a CUDA device skip without one. On a GPU machine:
``.venv/bin/python -m pytest -m gpu`` (and ``bench/engine.py --device cuda``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from engine.config import resolve_config
from engine.errors import OutOfMemory
from engine.sink import MemorySink
from engine.train import train
from jobs.queue import presence
from tests.engine_helpers import blobs

pytestmark = pytest.mark.gpu
RECORDED = Path(__file__).parent / "gpu"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        ("query-h100.txt", ("NVIDIA H100 80GB HBM3", 81559)),
        ("query-a100-two.txt", ("NVIDIA A100-SXM4-40GB", 40960)),
        ("query-mig-na.txt", ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", None)),  # memory [N/A]
        ("query-rtx-float.txt", ("NVIDIA GeForce RTX 4090", 24564)),
        ("driver-failed.txt", (None, None)),
    ],
)
def test_gpu_name_and_memory_are_read_from_nvidia_smi(recording, expected):
    assert presence.parse_gpu_query((RECORDED / recording).read_text()) == expected


def test_gpus_are_counted_from_nvidia_smi_list_without_mig_slices():
    assert presence.count_gpus((RECORDED / "list-two.txt").read_text()) == 2
    assert presence.count_gpus((RECORDED / "list-mig.txt").read_text()) == 1
    assert presence.count_gpus((RECORDED / "driver-failed.txt").read_text()) == 0


def _fake_nvidia_smi(bin_dir: Path, query: str, listing: str, code: int = 0) -> None:
    """An `nvidia-smi` on PATH that prints a recorded output, as the real one would."""
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *-L*) cat "{RECORDED / listing}";; *) cat "{RECORDED / query}";; esac\n'
        f"exit {code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_a_gpu_worker_reports_its_card_through_nvidia_smi(tmp_path, monkeypatch):
    _fake_nvidia_smi(tmp_path, "query-h100.txt", "list-two.txt")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert presence.visible_gpus() == ["cuda:0", "cuda:1"]
    assert presence.gpu_info("cuda:1") == ("NVIDIA H100 80GB HBM3", 81559)
    assert presence.gpu_info("cpu") == (None, None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert presence.visible_gpus() == ["cuda:0"]


def test_a_broken_driver_reports_no_gpu_instead_of_failing(tmp_path, monkeypatch):
    _fake_nvidia_smi(tmp_path, "driver-failed.txt", "driver-failed.txt", code=9)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert presence.gpu_info("cuda:0") == (None, None)
    assert presence.visible_gpus() == []


def test_the_workers_table_shows_the_gpu_name_and_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    from jobs.runs import views
    from jobs.store import registry
    from jobs.store.db import connect

    db = connect()
    registry.upsert_worker(
        db,
        "cuda0@gpu-box",
        device="cuda:0",
        gpu_name="NVIDIA H100 80GB HBM3",
        gpu_mem_total=81559,
        status="online",
        last_seen=1e12,
    )
    (w,) = views.home_summary(db)["workers"]
    assert (w["device"], w["gpu"], w["memory"]) == ("cuda:0", "NVIDIA H100 80GB HBM3", "80 GiB")


def test_bf16_on_the_cpu_trains_in_fp32_and_says_so():
    cfg = resolve_config(
        "quick", overrides={"train.epochs": 1, "train.preflight": False, "train.precision": "bf16"}
    )
    sink = MemorySink()
    train(cfg, blobs(n=200), sink=sink)
    start = sink.kinds("run_start")[0]
    assert start["data"]["precision"] == "fp32" and "needs a CUDA device" in start["message"]


@cuda
def test_a_run_on_cuda_keeps_its_tensors_on_the_device_and_learns():
    cfg = resolve_config("quick", overrides={"train.epochs": 3, "train.preflight": False})
    res = train(cfg, blobs(n=2000), sink=MemorySink(), device="cuda")
    assert res.status == "finished" and res.summary["best_val_metric"] > 0.8


@cuda
def test_bf16_autocast_on_cuda_trains_as_well_as_fp32():
    base = {"train.epochs": 3, "train.preflight": False}
    fp32 = train(
        resolve_config("quick", overrides=base), blobs(n=2000), sink=MemorySink(), device="cuda"
    )
    sink = MemorySink()
    bf16 = train(
        resolve_config("quick", overrides=base | {"train.precision": "bf16"}),
        blobs(n=2000),
        sink=sink,
        device="cuda",
    )
    assert sink.kinds("run_start")[0]["data"]["precision"] == "bf16"
    assert bf16.summary["best_val_metric"] >= fp32.summary["best_val_metric"] - 0.05


@cuda
def test_cuda_out_of_memory_ends_the_run_as_oom_with_a_suggestion():
    free, _ = torch.cuda.mem_get_info()
    # One hidden layer far wider than the card holds: its weights alone do not fit.
    width = int(free / 4 / 64) * 4
    cfg = resolve_config(
        "quick", overrides={"train.preflight": False, "model.kind": "mlp", "model.hidden": [width]}
    )
    sink = MemorySink()
    with pytest.raises(OutOfMemory, match="train.batch_size"):
        train(cfg, blobs(n=256, features=64), sink=sink, device="cuda")
    assert sink.kinds("oom")


def test_a_compiled_run_trains_and_its_checkpoint_resumes_without_compiling(tmp_path):
    """``train.compile`` (torch.compile, ~30 s of compiling on this CPU) changes nothing a
    checkpoint holds: a plain run resumes from a compiled one."""
    base = {"train.preflight": False, "model.hidden": [16]}
    compiled = resolve_config("quick", overrides=base | {"train.epochs": 2, "train.compile": True})
    res = train(compiled, blobs(n=200), sink=MemorySink(), run_dir=tmp_path)
    plain = train(
        resolve_config("quick", overrides=base | {"train.epochs": 2}),
        blobs(n=200),
        sink=MemorySink(),
    )
    assert res.status == "finished"
    assert res.summary["best_val_metric"] == pytest.approx(
        plain.summary["best_val_metric"], abs=0.03
    )
    sink = MemorySink()
    more = resolve_config("quick", overrides=base | {"train.epochs": 3})
    again = train(more, blobs(n=200), sink=sink, run_dir=tmp_path)
    assert sink.kinds("resumed") and again.summary["epochs"] == 3
