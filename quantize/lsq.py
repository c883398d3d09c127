"""LSQ activation quantizer (SPEC §3) and signed integer weight quantization."""

from __future__ import annotations

import math

import torch
from torch import nn


def _grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    return (x - x * scale).detach() + x * scale


def _round_half_up(x: torch.Tensor) -> torch.Tensor:
    # floor(x + 1/2): the rounding the DIF neuron performs with v0 = θ/2 (ties round up).
    return torch.floor(x + 0.5)


class LSQ(nn.Module):
    """Learned-step-size quantizer to unsigned levels ``0..levels``.

    ``x̂ = s · clip(round(x / s), 0, levels)`` with a straight-through round and LSQ's gradient
    scale ``1 / sqrt(numel · levels)``. The step is initialized from the first training batch
    (``2 E|x| / sqrt(levels)``). It equals QCFS with ``λ = s · levels``. With ``enabled``
    false it is the continuous clip ``clip(x, 0, s · levels)`` (the "float activations" view).
    """

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels
        self.step = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.initialized):
            with torch.no_grad():
                init = 2 * x.detach().abs().mean() / math.sqrt(self.levels)
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(init)
                    init /= torch.distributed.get_world_size()
                self.step.copy_(init.clamp_min(1e-4))
                self.initialized.fill_(True)
        s = _grad_scale(self.step, 1.0 / math.sqrt(x[0].numel() * self.levels))
        y = torch.clamp(x / s, 0, self.levels)
        if self.enabled:
            y = (_round_half_up(y) - y).detach() + y
        return y * s

    @torch.no_grad()
    def level(self, x: torch.Tensor) -> torch.Tensor:
        """The integer level ``0..levels`` of each element (what the SNN neuron's count is)."""
        return torch.clamp(_round_half_up(x / self.step), 0, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def quantize_weight(w: torch.Tensor, bits: int, scale: torch.Tensor) -> torch.Tensor:
    """Signed integer weights ``round(w / scale)`` clipped to ``±(2**(bits-1) - 1)``."""
    q = 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(w / scale), -q, q)


def per_channel_scale(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel scale that maps each row's largest magnitude to the top level."""
    q = 2 ** (bits - 1) - 1
    m = w.reshape(w.shape[0], -1).abs().amax(1)
    return torch.where(m > 0, m / q, torch.ones_like(m))
