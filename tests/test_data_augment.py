"""Augmentation (T12): pure, seeded, shape-preserving, and off means off."""

from __future__ import annotations

import pytest
import torch

from engine.data import augment


def _images(n: int = 16) -> torch.Tensor:
    # Asymmetric content so shifts, flips and rotations all change pixels.
    x = torch.zeros(n, 1, 8, 8)
    x[:, :, 1:5, 2] = 1.0
    x[:, :, 1, 2:6] = 1.0
    return x + torch.linspace(0, 0.1, n)[:, None, None, None]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "knobs",
    [{"shift": 2}, {"flip": True}, {"rotate_deg": 15.0}, {"noise_std": 0.1}],
)
def test_each_image_knob_changes_images_preserves_shape_and_leaves_input_alone(knobs):
    x = _images()
    before = x.clone()
    out = augment(x, "image", generator=_gen(), **knobs)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    assert torch.equal(x, before)


def test_all_knobs_off_returns_the_same_values_as_a_new_tensor():
    x = _images()
    out = augment(x, "image", generator=_gen())
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


def test_seeded_generator_makes_augmentation_deterministic():
    knobs = {"shift": 1, "flip": True, "rotate_deg": 10.0, "noise_std": 0.05}
    a = augment(_images(), "image", generator=_gen(7), **knobs)
    b = augment(_images(), "image", generator=_gen(7), **knobs)
    c = augment(_images(), "image", generator=_gen(8), **knobs)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_shift_moves_whole_pixels_and_flip_mirrors():
    x = _images(64)
    shifted = augment(x, "image", shift=1, generator=_gen())
    # Each shifted image equals the original moved by at most one pixel in each direction.
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    for i in range(8):
        windows = [padded[i, :, r : r + 8, c : c + 8] for r in range(3) for c in range(3)]
        assert any(torch.equal(shifted[i], w) for w in windows)
    flipped = augment(x, "image", flip=True, generator=_gen())
    same = [torch.equal(flipped[i], x[i]) for i in range(64)]
    mirrored = [torch.equal(flipped[i], x[i].flip(-1)) for i in range(64)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54


def test_small_rotation_keeps_images_close_and_works_on_non_square_images():
    x = torch.rand(4, 3, 6, 10, generator=_gen(1))
    out = augment(x, "image", rotate_deg=5.0, generator=_gen())
    assert out.shape == x.shape and (out - x).abs().mean() < 0.3


@pytest.mark.parametrize(("modality", "shape"), [("sequence", (8, 20, 2)), ("tabular", (8, 5))])
def test_noise_for_sequences_and_tables_and_image_knobs_are_ignored(modality, shape):
    x = torch.randn(shape, generator=_gen(2))
    noisy = augment(x, modality, noise_std=0.1, generator=_gen())
    assert noisy.shape == x.shape
    assert 0.05 < float((noisy - x).std()) < 0.15
    assert torch.equal(augment(x, modality, shift=2, flip=True, rotate_deg=10.0), x)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="modality"):
        augment(torch.zeros(2, 3), "audio")
    with pytest.raises(ValueError, match=">= 0"):
        augment(torch.zeros(2, 3), "tabular", noise_std=-1.0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augment(torch.zeros(2, 8, 8), "image", shift=1)
