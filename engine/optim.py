"""torch.optim's own optimizers, without the torch.compile guards a run that compiles nothing
pays for at start-up (issue 20, §7: a small run within 1.5 s of ``import torch``).

torch 2.13 wraps ``Optimizer.add_param_group``, ``zero_grad``, ``state_dict`` and
``load_state_dict`` in ``torch._disable_dynamo``, and every optimizer's ``step`` in
``_use_grad_for_differentiable``, which calls ``torch._dynamo.graph_break()``. Both exist so
that ``torch.compile`` does not trace the optimizer, and both import ``torch._dynamo`` on first
use: 1.2–1.9 s on these machines, more than a 178-row run's whole training. torch has no
switch for it (``TORCH_COMPILE_DISABLE`` is read only after the import).

Outside a compiled region those wrappers do nothing else: ``_disable_dynamo`` then calls the
function it wraps, and the step wrapper runs the step with gradients off (for an optimizer that
is not ``differentiable``). :func:`plain` gives the same optimizer class with the wrapped
functions themselves (``functools.wraps`` keeps each as ``__wrapped__``) and the step under
``torch.no_grad()``: the same arithmetic, the same ``state_dict`` format (a checkpoint moves
between the two either way), still an instance of torch's class (``ReduceLROnPlateau`` and
the hooks work). tests/test_optim.py checks that the weights are bit-for-bit the same as with
torch's class, and that a run imports no ``torch._dynamo``.

Why not our own optimizer: torch's is the reference implementation (foreach kernels, AdamW's
decoupled decay, its checkpoint format); only its compile guards are skipped. A run with
``train.compile`` on keeps torch's class as it is (``engine.nets.make_optimizer``); so does a
torch whose wrappers differ (no ``__wrapped__``): :func:`plain` then returns the class unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


@functools.cache
def plain(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``cls`` (e.g. ``torch.optim.SGD``) without its torch.compile guards, or ``cls`` itself
    when this torch's guards are not the ones described above."""
    body: dict[str, Any] = {"__doc__": f"{cls.__name__} without torch.compile's guards."}
    for name in GUARDED:
        raw = getattr(getattr(torch.optim.Optimizer, name), "__wrapped__", None)
        if raw is None or getattr(cls, name) is not getattr(torch.optim.Optimizer, name):
            return cls  # a torch we don't know, or a class with its own version: torch's
        body[name] = raw
    raw_step = getattr(cls.step, "__wrapped__", None)
    if raw_step is None:
        return cls

    def step(self: torch.optim.Optimizer, closure: Any = None) -> Any:
        # what torch's wrapper does around the step, less its graph breaks
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable"))):
            return raw_step(self, closure)

    step.__doc__ = raw_step.__doc__
    body["step"] = step
    return type(cls.__name__, (cls,), {**body, "__module__": __name__})


def make(
    cls: type[torch.optim.Optimizer], params: Any, *, compiled: bool = False, **kwargs: Any
) -> torch.optim.Optimizer:
    """An optimizer of torch's class ``cls``: torch's own when the run compiles its model,
    else :func:`plain`'s."""
    return (cls if compiled else plain(cls))(params, **kwargs)


__all__ = ["make", "plain"]
