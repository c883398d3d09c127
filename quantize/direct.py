"""Direct SNN training of the tailored transformer: the baseline of the paper's training-cost claim.

:class:`DirectSNN` is the same architecture as the QANN (:class:`~.model.CSDformer`, whose
parameters, buffers and module names it inherits unchanged) run as a spiking network in the
window domain of SPEC §5, with gradients by a surrogate and backpropagation through time:

- Every tensor between layers is ``T = levels`` frames. A synaptic layer runs on all ``T`` frames
  at once (time folded into the batch, the "multi-step" formulation), its BN folded as the
  converter folds it: frame ``t`` gets ``gain · W x(t)`` and frame 1 also the BN offset
  ``β − gain · μ``. In training ``μ, σ²`` are the batch statistics of the window total
  ``Σ_t W x(t)`` (the quantity the QANN's BN sees); running statistics are kept the same way.
- The encoding layer's whole current (image conv, BN) arrives at frame 1.
- Each LSQ quantizer of the QANN becomes a multi-step DIF neuron (delay ``D``; ``D = 0`` is the
  plain IF neuron) whose threshold is that quantizer's learned step ``s``, initial potential
  ``s/2``, reset by subtraction. A spike carries the value ``s`` (so the next layer's weights
  mean what they mean in the QANN). The Heaviside step has a sigmoid surrogate gradient
  (``α = 4`` on ``(v − θ)/θ``); gradients flow through time, the reset included.
- Attention is computed in the spike domain with TDEC: ``P(t) = a(t) Bcum(t) + Acum(t−1) b(t)``
  for ``q kᵀ`` and for ``attn · v``; NReLU's ``1/N`` and ``1/sqrt(d_head)`` scale the scores'
  currents, and the DIF neuron (which never fires on a negative potential) is the ReLU.
- Max-pool is TDEC max-pool of the cumulative spike counts; the head sums the classifier's
  currents over frames.

This is the time-stepped model that :func:`~.convert.convert` turns into integers: the
converter reads the same modules, so a directly trained checkpoint converts to an integer
artifact exactly as a QANN checkpoint does. With integer-representable weights and thresholds
the float forward pass here equals the golden model's spike frames (``tests/test_direct.py``).
With ``D = T − 1`` every neuron integrates its whole window before it fires, so the forward pass
equals the QANN's (SPEC §5, exactness) and only the gradients and the cost differ.

A checkpoint trained with ``train.direct: true`` reloads as a :class:`DirectSNN`; its forward
pass (and the accuracy ``train`` reports) is the float SNN in torch, not an integer artifact.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig
from .lsq import LSQ, _grad_scale
from .model import ConvBN, CSDformer, LinearBN

#: Steepness of the sigmoid surrogate gradient (SpikingJelly's default for ``Sigmoid``).
SURROGATE_ALPHA = 4.0


class _Spike(torch.autograd.Function):
    """Heaviside ``x >= 0`` forward; ``d/dx ≈ α σ'(α x/θ) / θ`` backward (and its ``θ`` part)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, theta: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x, theta)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, theta = ctx.saved_tensors
        u = x / theta
        sg = torch.sigmoid(ctx.alpha * u)
        du = grad * (ctx.alpha * sg * (1 - sg))
        gx = du / theta
        gtheta = None
        if ctx.needs_input_grad[1]:
            gtheta = (-(du * u) / theta).sum_to_size(theta.shape)
        return gx, gtheta, None


def dif(currents: torch.Tensor, theta: torch.Tensor, delay: int, alpha: float = SURROGATE_ALPHA) -> torch.Tensor:
    """Multi-step DIF neurons (SPEC §5) in float, differentiable by surrogate.

    ``currents (T, ...)``; ``theta`` a positive scalar tensor (or broadcastable); ``v0 = θ/2``.
    Returns binary spike frames ``(T, ...)`` (frame ``t − D`` of local step ``t``).
    """
    T = currents.shape[0]
    if not 0 <= delay <= T - 1:
        raise ValueError(f"delay: must be in 0..{T - 1}, got {delay}")
    v = (theta / 2).expand_as(currents[0])
    out = []
    for t in range(T + delay):
        if t < T:
            v = v + currents[t]
        if t >= delay:
            s = _Spike.apply(v - theta, theta, alpha)
            v = v - s * theta
            out.append(s)
    return torch.stack(out)


def tdec_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``P(t) = a(t) · Bcum(t) + Acum(t−1) · b(t)`` over frames (axis 0); ``Σ_t P = Acum(T) Bcum(T)``."""
    acum = a.cumsum(0)
    return a @ b.cumsum(0) + (acum - a) @ b


def tdec_maxpool(x: torch.Tensor, kernel: int = 2) -> torch.Tensor:
    """``out(t) = MP(C(t)) − MP(C(t−1))`` with ``C`` the cumulative sum over frames; ``x (T, B, C, H, W)``."""
    T, B = x.shape[:2]
    mp = F.max_pool2d(x.cumsum(0).flatten(0, 1), kernel).unflatten(0, (T, B))
    return mp - torch.cat([torch.zeros_like(mp[:1]), mp[:-1]])


def _at_least_f32(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast's outputs) → float32; float32/float64 unchanged (membranes, BN statistics)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def bn_frames(bn: nn.BatchNorm1d | nn.BatchNorm2d, z: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """BN applied to a current sequence as the converter folds it.

    ``z (T, B, ...)`` pre-BN currents, channels on ``channel_dim`` (of ``z``). Statistics are those
    of the window total ``Σ_t z(t)`` (batch statistics in training, running ones in eval);
    frame ``t`` gets ``gain · z(t)``, frame 1 also ``β − gain · μ``. Computed in float32 at least.
    """
    z = _at_least_f32(z)
    total = z.sum(0)
    cd = channel_dim - 1  # channel axis of total
    dims = tuple(d for d in range(total.dim()) if d != cd)
    shape = [1] * total.dim()
    shape[cd] = -1
    if bn.training:
        mean = total.mean(dims)
        var = total.var(dims, unbiased=False)
        with torch.no_grad():
            n = total.numel() // total.shape[cd]
            bn.num_batches_tracked.add_(1)
            m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype), m)
            bn.running_var.lerp_((var.detach() * n / max(1, n - 1)).to(bn.running_var.dtype), m)
    else:
        mean, var = bn.running_mean, bn.running_var
    gain = bn.weight / torch.sqrt(var + bn.eps)
    y = z * gain.reshape(shape)
    first = y[0] + (bn.bias - gain * mean).reshape(shape)
    return torch.cat([first[None], y[1:]])


def linear_frames(mod: LinearBN, x: torch.Tensor) -> torch.Tensor:
    """``(T, B, N, K)`` spike values → ``(T, B, N, M)`` currents."""
    return bn_frames(mod.bn, mod.linear(x), channel_dim=x.dim() - 1)


def conv_frames(mod: ConvBN, x: torch.Tensor) -> torch.Tensor:
    """``(T, B, C, H, W)`` spike values → ``(T, B, M, H, W)`` currents."""
    T, B = x.shape[:2]
    return bn_frames(mod.bn, mod.conv(x.flatten(0, 1)).unflatten(0, (T, B)), channel_dim=2)


def _grid_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(-2).transpose(-1, -2)  # (..., C, H, W) → (..., H*W, C)


class DirectSNN(CSDformer):
    """The QANN's architecture and parameters, trained and run as a multi-step spiking network.

    ``delay`` is the DIF delay ``D`` (default ``T − 1``, the artifact's default); ``spiking``
    false runs the inherited QANN forward pass on the same parameters.
    """

    def __init__(self, cfg: ModelConfig, delay: int | None = None, alpha: float = SURROGATE_ALPHA):
        super().__init__(cfg)
        T = cfg.levels
        self.delay = T - 1 if delay is None else int(delay)
        if not 0 <= self.delay <= T - 1:
            raise ValueError(f"delay: must be in 0..T-1 = 0..{T - 1}, got {delay}")
        self.alpha = alpha
        self.spiking = True

    # -- neurons ---------------------------------------------------------------------------------
    def _fire(self, q: LSQ, currents: torch.Tensor, name: str, record: dict | None) -> torch.Tensor:
        """The DIF layer that replaces quantizer ``q``: current frames → spike values (``s`` a spike)."""
        currents = _at_least_f32(currents)
        if self.training and not bool(q.initialized):
            # LSQ's statistical init, on the window total (the quantizer's input in the QANN).
            with torch.no_grad():
                init = 2 * currents.sum(0).abs().mean() / math.sqrt(q.levels)
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(init)
                    init /= torch.distributed.get_world_size()
                q.step.copy_(init.clamp_min(1e-4))
                q.initialized.fill_(True)
        s = q.step
        if torch.is_grad_enabled():  # LSQ's gradient scale (it leaves the value, up to rounding)
            s = _grad_scale(s, 1.0 / math.sqrt(currents[0, 0].numel() * q.levels))
        s = s.to(currents.dtype)
        spikes = dif(currents, s, self.delay, self.alpha)
        if record is not None:
            record[name] = spikes.detach()
        return spikes * s

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, image: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        """Logits (the head's currents summed over the window) of the float SNN.

        ``record``, if a dict, receives every spike layer's binary frames ``(T, B, ...)`` under
        the artifact's layer names and shapes (tokens as ``(N, C)``, attention as
        ``(heads, N, N)``).
        """
        if not self.spiking:
            return super().forward(image)
        T = self.cfg.levels
        # Encoding layer: the image current (conv, BN) arrives whole at frame 1.
        st0 = self.stages[0]
        z0 = st0.body.conv(image)
        z = torch.cat([z0[None], torch.zeros((T - 1,) + z0.shape, dtype=z0.dtype, device=z0.device)])
        x = bn_frames(st0.body.bn, z, channel_dim=2)
        for i, st in enumerate(self.stages):
            if i == 0:
                continue
            h = self._fire(st.quant, x, f"stages.{i}.quant", record)
            if st.pool:
                h = tdec_maxpool(h)
                if record is not None:
                    record[f"stages.{i}.pool"] = tdec_maxpool(record[f"stages.{i}.quant"])
            x = conv_frames(st.body, h)
        # Relative position module on the grid, then tokens (T, B, N, C).
        h = self._fire(self.rpe_quant, x, "rpe_quant", record)
        if record is not None:
            record["rpe_quant"] = _grid_to_tokens(record["rpe_quant"])
        x = _grid_to_tokens(x + conv_frames(self.rpe, h))
        for i, blk in enumerate(self.blocks):
            x = x + self._attention(blk.attn, x, f"blocks.{i}.attn", record)
            ml = blk.mlp
            h = self._fire(ml.quant1, x, f"blocks.{i}.mlp.quant1", record)
            h = self._fire(ml.quant2, linear_frames(ml.fc1, h), f"blocks.{i}.mlp.quant2", record)
            x = x + linear_frames(ml.fc2, h)
        h = self._fire(self.head_quant, x, "head_quant", record)
        return self.head(h.sum(0).mean(-2))

    def _attention(self, at, x: torch.Tensor, p: str, record: dict | None) -> torch.Tensor:
        T, B, n, c = x.shape
        heads = at.heads
        dh = c // heads

        def split(t: torch.Tensor) -> torch.Tensor:  # (T, B, N, C) → (T, B, heads, N, dh)
            return t.reshape(T, B, n, heads, dh).transpose(2, 3)

        s = self._fire(at.quant_in, x, f"{p}.quant_in", record)
        q = split(self._fire(at.quant_q, linear_frames(at.q, s), f"{p}.quant_q", record))
        k = split(self._fire(at.quant_k, linear_frames(at.k, s), f"{p}.quant_k", record))
        v = split(self._fire(at.quant_v, linear_frames(at.v, s), f"{p}.quant_v", record))
        scores = tdec_matmul(q, k.transpose(-2, -1)) * (1.0 / (n * math.sqrt(dh)))
        attn = self._fire(at.quant_attn, scores, f"{p}.quant_attn", record)
        out = tdec_matmul(attn, v).transpose(2, 3).reshape(T, B, n, c)
        out = self._fire(at.quant_out, out, f"{p}.quant_out", record)
        return linear_frames(at.proj, out)
