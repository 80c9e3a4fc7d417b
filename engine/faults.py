"""Fault injection for the reliability suite, kept out of the training loop.

The loop calls :meth:`FaultHook.after_step` after every optimizer update; the default hook does
nothing. The queue's runner and the CLI build one with :meth:`FaultHook.from_env`, the only
place the ``TRAINBOARD_FAULT_*`` variables are read; the engine itself never reads the
environment. No torch import at module level: the queue's worker process builds a hook
without loading torch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

STEP_DELAY_VAR = "TRAINBOARD_FAULT_STEP_DELAY_S"
OOM_AT_STEP_VAR = "TRAINBOARD_FAULT_OOM_AT_STEP"
BUNDLE_STD_VAR = "TRAINBOARD_FAULT_BUNDLE_STD"


@dataclass(frozen=True)
class FaultHook:
    """``step_delay_s``: every step takes at least this much longer, as on a slow device, so a
    run outlasts the fault a test injects into it on any machine. ``oom_at_step``: that step
    raises the same ``torch.OutOfMemoryError`` a GPU would. ``bundle_std``: the bundle's
    standardization is scaled by this, so its parity check must fail (engine.bundle)."""

    step_delay_s: float = 0
    oom_at_step: int | None = None
    bundle_std: float | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> FaultHook:
        """Read TRAINBOARD_FAULT_STEP_DELAY_S and TRAINBOARD_FAULT_OOM_AT_STEP; unset (always,
        outside tests) gives a hook that does nothing."""
        delay = environ.get(STEP_DELAY_VAR)
        oom = environ.get(OOM_AT_STEP_VAR)
        std = environ.get(BUNDLE_STD_VAR)
        return cls(
            step_delay_s=float(delay) if delay else 0,
            oom_at_step=int(oom) if oom else None,
            bundle_std=float(std) if std else None,
        )

    def after_step(self, step: int) -> None:
        """Called by the loop after optimizer step number ``step`` (counted from 1)."""
        if step == self.oom_at_step:
            import torch  # only here: see the module docstring

            raise torch.OutOfMemoryError(
                f"simulated out-of-memory at step {step} ({OOM_AT_STEP_VAR})"
            )
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
