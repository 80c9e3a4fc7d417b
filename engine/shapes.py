"""The layer sizes of the models ``engine.models`` builds, as arithmetic on the config (no torch).

``engine.models`` builds its layers from these plans, and the quota check (``jobs.runs.quotas``)
counts parameters and activations from the same ones before a run is queued, so the two can't
drift apart. This module imports nothing heavy: the dashboard's processes use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# The model an "auto" kind becomes for each kind of data.
AUTO_KIND: dict[str, str] = {"tabular": "mlp", "image": "cnn", "sequence": "lstm"}
# A CNN block pools (2×2) while its image is at least this many pixels on each side.
POOL_MIN_SIDE = 4


@dataclass(frozen=True)
class ConvBlock:
    """One CNN block: a 3×3 convolution from ``c_in`` to ``c_out`` channels on an ``h``×``w``
    image (padding keeps the size), then a 2×2 max-pool when ``pool``."""

    c_in: int
    c_out: int
    h: int
    w: int
    pool: bool


def cnn_blocks(
    in_shape: tuple[int, ...], channels: list[int]
) -> tuple[list[ConvBlock], tuple[int, int, int]]:
    """The CNN's blocks for an input of ``in_shape`` (C, H, W) and the (C, H, W) its linear
    head reads."""
    c, h, w = in_shape
    blocks = []
    for ch in channels:
        pool = min(h, w) >= POOL_MIN_SIDE
        blocks.append(ConvBlock(c, ch, h, w, pool))
        if pool:
            h, w = h // 2, w // 2
        c = ch
    return blocks, (c, h, w)


def layer_sizes(
    model: dict[str, Any], kind: str, shape: tuple[int, ...], outputs: int
) -> tuple[int, int]:
    """(parameters of one member, activations per example) of the ``kind`` model that
    ``model`` (the config's ``model`` section, as a dict) describes for inputs of ``shape``."""
    if kind == "cnn":
        c, h, w = (list(shape) + [1, 1, 1])[:3]
        blocks, (c, h, w) = cnn_blocks((c, h, w), model.get("channels", [32, 64]))
        params = sum(b.c_in * b.c_out * 9 + b.c_out for b in blocks)
        acts = sum(b.c_out * b.h * b.w for b in blocks)
        params += c * h * w * outputs + outputs
        return params, acts + outputs
    if kind in ("lstm", "gru"):
        steps, feats = (shape[0], shape[-1]) if len(shape) >= 2 else (1, shape[0])
        hid = int(model.get("rnn_hidden", 128))
        gates = 4 if kind == "lstm" else 3
        params = 0
        for layer in range(int(model.get("rnn_layers", 1))):
            width = feats if layer == 0 else hid
            params += gates * (hid * width + hid * hid + 2 * hid)
        params += hid * outputs + outputs
        return params, steps * hid * gates * int(model.get("rnn_layers", 1)) + outputs
    width = math.prod(shape) if shape else 1
    params = acts = 0
    for h in model.get("hidden", [256, 256]):
        params += width * h + h
        acts += h
        width = h
    params += width * outputs + outputs
    return params, acts + outputs
