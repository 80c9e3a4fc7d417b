"""Model builders (MLP, small CNN, LSTM/GRU) with the T8 init schemes and the T11 forget-gate bias."""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.config import ModelConfig
from engine.errors import ConfigError
from engine.messages import Message

_ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


EMBED_FREQUENCIES = 16  # K sines and K cosines per input value
EMBED_DIM = 8  # what the shared layer makes of them, per input value
# Frequency k is drawn from N(0, σ_k²), σ_k spaced evenly on a log scale from 0.05 to 1 cycle
# per standard deviation of the input: the slow ones are nearly linear (a linear table keeps
# its straight line), the fast ones give sharp cut-offs. One σ for all was measured worse: 0.3
# cost breast-cancer and iris a point or two, 0.1 lost cars (bench/quality.py).
EMBED_SCALES = (0.05, 1.0)


class PeriodicEmbedding(nn.Module):
    """Numeric embeddings, PLR-lite (Gorishniy et al. 2022, "On Embeddings for Numerical
    Features in Tabular Deep Learning"; the "lite" form TabM uses): each standardized input
    value x_j enters as itself and as ReLU(W·[sin 2πf x_j, cos 2πf x_j]), with K frequencies f
    per column and one Linear(2K → d) shared by every column.

    Written here because torch has no such layer. The frequencies are drawn once from the
    model's seed and kept fixed (a buffer, not a weight: the T6 ratio and the optimizer see only
    the shared Linear), so a stacked ensemble's members each get their own, and a rebuild from
    the same seed (a resume) gets the same ones."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        lo, hi = EMBED_SCALES
        scales = torch.logspace(math.log10(lo), math.log10(hi), EMBED_FREQUENCIES)
        self.register_buffer("freq", torch.randn(n_features, EMBED_FREQUENCIES) * scales)
        self.linear = nn.Linear(2 * EMBED_FREQUENCIES, EMBED_DIM)
        self.act = nn.ReLU()
        self.out_features = n_features * (1 + EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 2 * math.pi * x.unsqueeze(-1) * self.freq  # (B, F, K)
        e = self.act(self.linear(torch.cat([z.sin(), z.cos()], dim=-1)))  # (B, F, d)
        return torch.cat([x, e.flatten(1)], dim=1)


class MLP(nn.Module):
    def __init__(self, in_features: int, out_features: int, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        if cfg.embedding == "periodic":
            layers.append(PeriodicEmbedding(in_features))
            width = layers[-1].out_features
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), _ACT[cfg.activation]()]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """Conv(3×3) → act → 2×2 max-pool per block while the image is ≥ 4 px, then a linear head."""

    def __init__(self, in_shape: tuple[int, int, int], out_features: int, cfg: ModelConfig) -> None:
        super().__init__()
        c, h, w = in_shape
        blocks: list[nn.Module] = []
        for ch in cfg.channels:
            blocks += [nn.Conv2d(c, ch, 3, padding=1), _ACT[cfg.activation]()]
            if min(h, w) >= 4:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = ch
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        if cfg.dropout > 0:
            head.append(nn.Dropout(cfg.dropout))
        head.append(nn.Linear(c * h * w, out_features))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class RNN(nn.Module):
    """LSTM or GRU over (batch, time, features); the head reads the last time step."""

    def __init__(
        self, in_shape: tuple[int, int], out_features: int, cfg: ModelConfig, kind: str
    ) -> None:
        super().__init__()
        cls = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cls(
            in_shape[1],
            cfg.rnn_hidden,
            num_layers=cfg.rnn_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.rnn_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = nn.Linear(cfg.rnn_hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(self.drop(out[:, -1]))


def resolve_kind(cfg: ModelConfig, modality: str) -> str:
    if cfg.kind != "auto":
        allowed = {"tabular": {"mlp"}, "image": {"mlp", "cnn"}, "sequence": {"mlp", "lstm", "gru"}}[
            modality
        ]
        if cfg.kind not in allowed:
            msg = Message(
                "config.model_kind", kind=cfg.kind, modality=modality, allowed=str(sorted(allowed))
            )
            raise ConfigError(msg, {"model.kind": msg})
        return cfg.kind
    return {"tabular": "mlp", "image": "cnn", "sequence": "lstm"}[modality]


def build_model(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    out_features: int,
    modality: str,
    *,
    seed: int | None = None,
) -> nn.Module:
    if seed is not None:
        torch.manual_seed(seed)
    kind = resolve_kind(cfg, modality)
    if kind == "mlp":
        model: nn.Module = MLP(math.prod(input_shape), out_features, cfg)
    elif kind == "cnn":
        model = CNN(tuple(input_shape), out_features, cfg)  # type: ignore[arg-type]
    else:
        model = RNN(tuple(input_shape), out_features, cfg, kind)  # type: ignore[arg-type]
    apply_init(model, cfg.init, cfg.init_scale)
    if kind == "lstm" and cfg.forget_bias:
        set_forget_bias(model, cfg.forget_bias)
    return model


def fan_in(name: str, p: torch.Tensor) -> int:
    """Inputs feeding one output unit: in_features for Linear/RNN matrices, in_ch·k·k for conv."""
    return math.prod(p.shape[1:])


@torch.no_grad()
def apply_init(model: nn.Module, scheme: str, init_scale: float = 1.0) -> None:
    """T8. 'default' keeps PyTorch's init; 'normal-0.02' draws every weight from 0.02·N(0,1);
    'scaled' draws init_scale/sqrt(fan_in)·N(0,1). Biases start at zero in both."""
    if scheme == "default":
        return
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            std = 0.02 if scheme == "normal-0.02" else init_scale / math.sqrt(fan_in(name, p))
            p.normal_(0.0, std)
        else:
            p.zero_()


@torch.no_grad()
def set_forget_bias(model: nn.Module, value: float) -> None:
    """T11. PyTorch packs LSTM gates as (input, forget, cell, output) in bias_ih and bias_hh, and
    adds the two. We put the whole value on bias_ih's forget slice and zero bias_hh's, so the
    effective forget bias is exactly ``value``; the other gates keep their initial values."""
    for mod in model.modules():
        if isinstance(mod, nn.LSTM):
            h = mod.hidden_size
            for name, p in mod.named_parameters():
                if name.startswith("bias_ih"):
                    p[h : 2 * h].fill_(value)
                elif name.startswith("bias_hh"):
                    p[h : 2 * h].zero_()


def weight_matrices(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters the T6 ratio is reported for: every weight matrix / conv kernel."""
    return [(n, p) for n, p in model.named_parameters() if p.ndim >= 2 and p.requires_grad]
