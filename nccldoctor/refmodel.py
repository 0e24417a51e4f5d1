"""The reference workload of the DDP benchmark: a GPT-style decoder and synthetic tokens.

Fixed and reproducible, with nothing to download: the model is a pre-LayerNorm decoder-only
transformer (causal self-attention through scaled_dot_product_attention, a 4x GELU MLP, the
output layer tied to the token embedding), and the data are arithmetic sequences of token ids
(start and stride drawn from a seed and the sample's index), so next-token prediction has
something to learn and the loss falls within a few dozen steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


@dataclass(frozen=True)
class Preset:
    vocab: int
    seq_len: int
    layers: int
    heads: int
    dim: int
    batch: int  # per-rank micro-batch
    lr: float  # tuned for `batch`; see the linear scaling hint in the report


PRESETS = {
    "tiny": Preset(vocab=512, seq_len=64, layers=2, heads=4, dim=128, batch=8, lr=3e-3),  # CPU, seconds
    "gpt2-125m": Preset(vocab=50304, seq_len=1024, layers=12, heads=12, dim=768, batch=8, lr=6e-4),
}
MAX_STRIDE = 8  # the sequences' strides are 1..MAX_STRIDE


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(dim, dim=2)
        q, k, v = (t.view(batch, seq, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, seq, dim))
        return x + self.mlp(self.norm2(x))


class Gpt(nn.Module):
    """Returns the mean next-token cross-entropy, so DDP wraps the whole step's forward."""

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.token = nn.Embedding(preset.vocab, preset.dim)
        self.position = nn.Embedding(preset.seq_len, preset.dim)
        self.blocks = nn.ModuleList(Block(preset.dim, preset.heads) for _ in range(preset.layers))
        self.norm = nn.LayerNorm(preset.dim)
        self.head = nn.Linear(preset.dim, preset.vocab, bias=False)
        self.head.weight = self.token.weight  # tied, as in GPT-2
        self.apply(_init)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gradient_bytes(model: nn.Module) -> int:
    """What DDP all-reduces per step: every trainable parameter's gradient."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


class SyntheticTokens(Dataset):
    """Sample i: token ids start, start+stride, ... (mod vocab); inputs and next-token targets.

    Each sample comes from its own generator (seed, index), so any rank can build any sample
    and the data do not depend on how the sampler splits them.
    """

    def __init__(self, preset: Preset, length: int, seed: int) -> None:
        self.preset = preset
        self.length = length
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        start = int(torch.randint(self.preset.vocab, (1,), generator=generator))
        stride = int(torch.randint(1, MAX_STRIDE + 1, (1,), generator=generator))
        sequence = (start + stride * torch.arange(self.preset.seq_len + 1)) % self.preset.vocab
        return sequence[:-1], sequence[1:]


def chance_loss(preset: Preset) -> float:
    """The loss of a model that has learnt nothing (uniform over the vocabulary)."""
    return math.log(preset.vocab)
