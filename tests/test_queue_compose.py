"""compose.yaml, checked by a real compose implementation (``docker-compose config`` parses,
validates and normalises the file without needing a Docker engine)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"


def _compose_cmd() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.skip("no compose implementation (apt-get install docker-compose)")


def _config(*extra: str) -> str:
    out = subprocess.run(
        [*_compose_cmd(), "-f", str(COMPOSE), "config", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _service_blocks(normalised: str) -> dict[str, str]:
    """Split ``config`` output into the text of each service (its 2-space indented key)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_services = False
    for line in normalised.splitlines():
        if not line.startswith(" "):
            in_services, current = line == "services:", None
        elif in_services and re.match(r"^  \S", line):
            current = blocks.setdefault(line.strip().rstrip(":"), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in blocks.items()}


def test_compose_file_is_valid_and_has_redis_app_and_a_worker_per_gpu():
    services = set(_config("--services").split())
    assert {"redis", "app", "worker-gpu0", "worker-gpu1"} <= services
    assert set(_config("--volumes").split()) >= {"trainboard-data", "redis-data"}

    blocks = _service_blocks(_config())
    redis = blocks["redis"]
    assert "noeviction" in redis and "appendonly" in redis
    assert "healthcheck:" in redis and "redis-cli" in redis

    for name in ("app", "worker-gpu0", "worker-gpu1"):
        block = blocks[name]
        assert "TRAINBOARD_BROKER_URL: redis://redis:6379/0" in block, name
        assert "trainboard-data:/data" in block, name
        assert "service_healthy" in block, name

    for i in (0, 1):
        block = blocks[f"worker-gpu{i}"]
        assert re.search(rf"device_ids:\n\s+- '{i}'", block), block
        assert "driver: nvidia" in block and "- gpu" in block
        # The container sees only its own GPU, as cuda:0.
        assert "- worker\n" in block and "- cuda:0\n" in block
    assert "8501" in blocks["app"]
