"""Collects what the fault and hostile-upload tests observed, and renders docs/reliability.md.

Tests call :func:`record_fault` / :func:`record_upload`; at the end of the session
``tests/conftest.py`` writes ``artifacts/reliability.md`` (and ``.json``). After a full run,
copy it to ``docs/reliability.md``:  ``cp artifacts/reliability.md docs/reliability.md``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FAULTS: list[dict] = []
UPLOADS: list[dict] = []


def record_fault(
    fault: str,
    *,
    final_status: str,
    survived: bool,
    points_checked: int,
    points_lost: int,
    flush_window_points: int = 0,
    note: str = "",
) -> None:
    FAULTS.append(
        {
            "fault": fault,
            "final_status": final_status,
            "survived": survived,
            "points_checked": points_checked,
            "points_lost": points_lost,
            "flush_window_points": flush_window_points,
            "note": note,
        }
    )


def record_upload(file: str, *, rejected: bool, message: str, trace_left: bool) -> None:
    UPLOADS.append(
        {"file": file, "rejected": rejected, "message": message, "trace_left": trace_left}
    )


def render() -> str:
    lines = [
        "# Reliability: faults injected, uploads refused",
        "",
        f"Produced by the test suite (`tests/test_faults.py`, `tests/test_uploads_hostile.py`) on "
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, Python {platform.python_version()}. "
        "Every row is a test that fails if its expectation breaks; regenerate with `./tb test` and "
        "`cp artifacts/reliability.md docs/reliability.md`.",
        "",
    ]
    if FAULTS:
        lines += [
            "## Faults",
            "",
            '"Points checked" are the metric points committed before the fault (read back after it);',
            '"lost" counts those missing afterwards. Points still in the writer\'s buffer when a',
            "process is killed (at most one flush interval, 0.5 s) are not counted as committed.",
            "Each fault must land while its run is still going, and each test asserts that it did:",
            "the runs under test sleep 50 ms a step (the engine's `TRAINBOARD_FAULT_STEP_DELAY_S`",
            "hook, a stand-in for a slow device), so they outlast the fault on a fast machine too.",
            "",
            "| fault injected | run ended as | survived | points checked | points lost | note |",
            "|---|---|---|---|---|---|",
        ]
        for f in FAULTS:
            lines.append(
                f"| {f['fault']} | {f['final_status']} | {'yes' if f['survived'] else 'NO'} | "
                f"{f['points_checked']:,} | {f['points_lost']} | {f['note']} |"
            )
        lines += [
            "",
            f"Total: {len(FAULTS)} faults, {sum(f['survived'] for f in FAULTS)} survived, "
            f"{sum(f['points_checked'] for f in FAULTS):,} points checked, {sum(f['points_lost'] for f in FAULTS)} lost.",
            "",
        ]
    if UPLOADS:
        lines += [
            "## Hostile and broken uploads",
            "",
            "| file | rejected | trace left | message shown to the user |",
            "|---|---|---|---|",
        ]
        for u in sorted(UPLOADS, key=lambda u: u["file"]):
            msg = u["message"].replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| `{u['file']}` | {'yes' if u['rejected'] else 'NO'} | {'YES' if u['trace_left'] else 'none'} | {msg} |"
            )
        lines += [
            "",
            f"Total: {len(UPLOADS)} bad inputs tried, {sum(u['rejected'] and not u['trace_left'] for u in UPLOADS)} "
            "rejected cleanly.",
            "",
        ]
    return "\n".join(lines)


def write() -> Path | None:
    if not (FAULTS or UPLOADS):
        return None
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "reliability.json").write_text(
        json.dumps({"faults": FAULTS, "uploads": UPLOADS}, indent=2)
    )
    out = ARTIFACTS / "reliability.md"
    out.write_text(render())
    return out
