"""Data augmentation on tensors, on whatever device they are on (T12).

A pure function: the input is never modified, and a seeded ``torch.Generator`` makes it
reproducible. Images get random shifts, optional horizontal flips and small rotations; any
modality can get additive Gaussian noise (sequences, tables, images).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.data.base import MODALITIES


def _rand(shape: tuple[int, ...], g: torch.Generator | None, like: torch.Tensor, normal=False):
    # Random numbers come from the generator's device (a CPU generator can't fill a CUDA
    # tensor) and then move to the data's device.
    device = g.device if g is not None else like.device
    fn = torch.randn if normal else torch.rand
    return fn(shape, generator=g, device=device, dtype=like.dtype).to(like.device)


def _shift(x: torch.Tensor, shift: int, g: torch.Generator | None) -> torch.Tensor:
    n, c, h, w = x.shape
    # Edge pixels are repeated into the gap (not zeros, which after standardization would be
    # the mean, not the background).
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    offs = (_rand((n, 2), g, x) * (2 * shift + 1)).floor().long().clamp_(0, 2 * shift)
    rows = torch.arange(h, device=x.device)[None, :] + offs[:, :1]  # (n, h)
    cols = torch.arange(w, device=x.device)[None, :] + offs[:, 1:]  # (n, w)
    ni = torch.arange(n, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[ni, ci, rows[:, None, :, None], cols[:, None, None, :]]


def _rotate(x: torch.Tensor, max_deg: float, g: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    angle = (_rand((n,), g, x) * 2 - 1) * math.radians(max_deg)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    # Rotation in pixel space, written in affine_grid's normalized [-1, 1] coordinates
    # (the h/w factors keep non-square images from shearing).
    theta = torch.stack(
        [torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment(
    x: torch.Tensor,
    modality: str,
    *,
    shift: int = 0,
    flip: bool = False,
    rotate_deg: float = 0.0,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return an augmented copy of the batch ``x`` (training split only).

    Images (N, C, H, W): ``shift`` moves each image by up to that many pixels in each direction;
    ``flip`` mirrors half of the images left-right (off by default: wrong for digits and text);
    ``rotate_deg`` rotates each by a random angle in [-rotate_deg, rotate_deg]. ``noise_std``
    adds Gaussian noise (in standardized units) for every modality. The image-only knobs are
    ignored for tables and sequences, so one augmentation setting can serve any dataset.
    For noise on a GPU, pass a generator on that GPU so the noise is drawn there.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
    if shift < 0 or rotate_deg < 0 or noise_std < 0:
        raise ValueError("shift, rotate_deg and noise_std must be >= 0")
    out = x.clone()
    if modality == "image":
        if x.dim() != 4:
            raise ValueError(f"image batches must be (N, C, H, W), got shape {tuple(x.shape)}")
        if shift:
            out = _shift(out, int(shift), generator)
        if flip:
            mask = _rand((x.shape[0],), generator, x) < 0.5
            out = torch.where(mask[:, None, None, None], out.flip(-1), out)
        if rotate_deg:
            out = _rotate(out, float(rotate_deg), generator)
    if noise_std:
        out = out + noise_std * _rand(tuple(x.shape), generator, x, normal=True)
    return out
