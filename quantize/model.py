"""The tailored transformer of SPEC §2 in PyTorch, quantized with LSQ.

Every linear module is pre-activation ``Quant → Linear/Conv → BN``; quantizers replace ReLU,
BN replaces LayerNorm, NReLU replaces softmax. The residual stream is real-valued. Module names
here are the names the converter gives the artifact's layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig
from .lsq import LSQ


class ConvBN(nn.Module):
    """3×3 convolution (stride 1, padding 1) followed by BN: one foldable synaptic layer."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class LinearBN(nn.Module):
    """Token-wise linear layer followed by BN over channels: ``(B, N, K) → (B, N, M)``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=False)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(x).transpose(1, 2)).transpose(1, 2)


class Stage(nn.Module):
    """Tokenizer stage: ``[Quant → MaxPool2] → Conv3×3 → BN`` (stage 0 reads the image)."""

    def __init__(self, cin: int, cout: int, levels: int, first: bool, pool: bool):
        super().__init__()
        self.quant = None if first else LSQ(levels)
        self.pool = pool
        self.body = ConvBN(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is not None:
            x = self.quant(x)
        if self.pool:
            x = F.max_pool2d(x, 2)
        return self.body(x)


class TMSA(nn.Module):
    """Tailored multi-head self-attention: NReLU scores, quantized q, k, v, attn and output."""

    def __init__(self, dim: int, heads: int, levels: int):
        super().__init__()
        self.heads = heads
        self.quant_in = LSQ(levels)
        self.q, self.k, self.v = LinearBN(dim, dim), LinearBN(dim, dim), LinearBN(dim, dim)
        self.quant_q, self.quant_k, self.quant_v = LSQ(levels), LSQ(levels), LSQ(levels)
        self.quant_attn = LSQ(levels)
        self.quant_out = LSQ(levels)
        self.proj = LinearBN(dim, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        s = self.quant_in(x)
        q = self.split(self.quant_q(self.q(s)))
        k = self.split(self.quant_k(self.k(s)))
        v = self.split(self.quant_v(self.v(s)))
        # NReLU(s) = ReLU(s) / N, with the usual 1/sqrt(d_head); both fold into the threshold.
        scores = q @ k.transpose(-2, -1) * (1.0 / (n * math.sqrt(c // self.heads)))
        attn = self.quant_attn(F.relu(scores))
        out = self.quant_out(attn @ v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class TMLP(nn.Module):
    """Two linear modules, ``D → rD → D``."""

    def __init__(self, dim: int, ratio: int, levels: int):
        super().__init__()
        self.quant1, self.fc1 = LSQ(levels), LinearBN(dim, dim * ratio)
        self.quant2, self.fc2 = LSQ(levels), LinearBN(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.quant2(self.fc1(self.quant1(x))))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ratio: int, levels: int):
        super().__init__()
        self.attn = TMSA(dim, heads, levels)
        self.mlp = TMLP(dim, ratio, levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class CSDformer(nn.Module):
    """CSDformer-L-D: tokenizer with relative-position module, L blocks, pooled linear head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        depth, dim = cfg.depth, cfg.dim
        lv = cfg.levels
        chans = [st.channels if st.channels is not None else dim for st in cfg.tokenizer]
        cins = [cfg.in_channels] + chans[:-1]
        self.stages = nn.ModuleList(
            Stage(ci, co, lv, i == 0, st.pool) for i, (ci, co, st) in enumerate(zip(cins, chans, cfg.tokenizer))
        )
        self.rpe_quant = LSQ(lv)
        self.rpe = ConvBN(dim, dim)
        self.blocks = nn.ModuleList(Block(dim, cfg.heads, cfg.mlp_ratio, lv) for _ in range(depth))
        self.head_quant = LSQ(lv)
        self.head = nn.Linear(dim, cfg.num_classes)

    @property
    def grid(self) -> int:
        size = self.cfg.image_size
        for st in self.cfg.tokenizer:
            size //= 2 if st.pool else 1
        return size

    def tokens(self, image: torch.Tensor) -> torch.Tensor:
        x = image
        for stage in self.stages:
            x = stage(x)
        x = x + self.rpe(self.rpe_quant(x))
        return x.flatten(2).transpose(1, 2)  # (B, N, D)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.tokens(image)
        for block in self.blocks:
            x = block(x)
        return self.head(self.head_quant(x).mean(1))

    def quantizers(self) -> list[LSQ]:
        return [m for m in self.modules() if isinstance(m, LSQ)]

    def set_quantized(self, enabled: bool) -> None:
        """Switch all activation quantizers between LSQ levels and continuous clipping."""
        for q in self.quantizers():
            q.enabled = enabled
