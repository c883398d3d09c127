"""Conversion (SPEC §4): a trained QANN → the integer spiking model artifact.

- Every BN is folded into the conv/linear before it, and the input step of the layer (the
  quantizer step, or the pixel scale for the encoding layer) into its weights.
- Each synaptic layer's output gets an integer current scale ``σ`` per output channel, chosen so
  that its weights are signed ``weight_bits`` integers; biases are ``round(b / σ)``.
- All layers that write the residual stream share one ``σ`` per channel (the largest any of them
  needs), so skip-path and branch currents add without rescaling.
- Each quantizer becomes a DIF layer with threshold ``θ = round(s / σ)`` and ``v0 = θ // 2``.
- Attention constants (``1/N``, ``1/sqrt(d_head)``, products of steps) go into the thresholds of
  ``quant_attn`` and ``quant_out``; their TDEC currents are shifted left by ``shift`` bits so the
  threshold keeps at least 8 bits of precision. No multiplication by a constant remains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import __version__
from ..artifact import Artifact, InputSpec, Layer, validate
from .config import Config
from .lsq import LSQ
from .model import CSDformer, ConvBN, LinearBN

#: Minimum integer threshold for the attention DIF layers (sets their current shift).
THETA_MIN = 256


@dataclass
class Folded:
    """A synaptic layer with BN folded and the input step absorbed: ``y = weight · n + bias``."""

    weight: np.ndarray  # float64, (M, K) or (M, C, kh, kw)
    bias: np.ndarray  # float64, (M,)

    def row_max(self) -> np.ndarray:
        return np.abs(self.weight.reshape(self.weight.shape[0], -1)).max(1)


def fold(mod: ConvBN | LinearBN, input_step: float) -> Folded:
    bn = mod.bn
    w = (mod.conv.weight if isinstance(mod, ConvBN) else mod.linear.weight).detach().double()
    gain = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shape = (-1,) + (1,) * (w.dim() - 1)
    weight = w * gain.reshape(shape) * input_step
    bias = bn.bias.detach().double() - gain * bn.running_mean.double()
    return Folded(weight.numpy(), bias.numpy())


def _scale_for(row_max: np.ndarray, bits: int) -> np.ndarray:
    qmax = 2 ** (bits - 1) - 1
    return np.where(row_max > 0, row_max / qmax, 1.0)


def _integer(f: Folded, sigma: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    qmax = 2 ** (bits - 1) - 1
    shape = (-1,) + (1,) * (f.weight.ndim - 1)
    w = np.clip(np.round(f.weight / sigma.reshape(shape)), -qmax, qmax)
    b = np.round(f.bias / sigma)
    wdt = np.int8 if bits <= 8 else np.int16
    return w.astype(wdt), b.astype(np.int32)


def _dif(name: str, src: str, shape: tuple[int, ...], step: float, sigma: np.ndarray, grid: bool) -> Layer:
    theta = np.maximum(1, np.round(step / sigma)).astype(np.int32)
    if grid:
        theta = theta.reshape(-1, 1, 1)
    return Layer(name, "dif", (src,), shape, {}, {"threshold": theta, "v0": (theta // 2).astype(np.int32)})


def _step(q: LSQ) -> float:
    return float(q.step.detach())


def convert(model: CSDformer, cfg: Config, *, delay: int | None = None, name: str | None = None,
            metrics: dict | None = None) -> Artifact:
    """Convert a trained model to a validated :class:`Artifact`."""
    from ..datasets import info as dataset_info

    model = model.eval().cpu()
    mc = cfg.model
    bits = mc.weight_bits
    T = mc.levels
    dim, heads = mc.dim, mc.heads
    dinfo = dataset_info(cfg.data.name)
    in_scale = 1.0 / dinfo.max_value
    layers: list[Layer] = []

    # --- the residual stream's producers and its one scale per channel -----------------------
    stages = list(model.stages)
    last = len(stages) - 1
    steps_in = [in_scale] + [_step(st.quant) for st in stages[1:]]
    folded_stages = [fold(st.body, s) for st, s in zip(stages, steps_in)]
    rpe = fold(model.rpe, _step(model.rpe_quant))
    projs = [fold(b.attn.proj, _step(b.attn.quant_out)) for b in model.blocks]
    fc2s = [fold(b.mlp.fc2, _step(b.mlp.quant2)) for b in model.blocks]
    producers = [folded_stages[last], rpe, *projs, *fc2s]
    sigma_res = _scale_for(np.max([p.row_max() for p in producers], axis=0), bits)

    # --- tokenizer -------------------------------------------------------------------------------
    size = mc.image_size
    src = "image"
    for i, (st, f) in enumerate(zip(stages, folded_stages)):
        sigma = sigma_res if i == last else _scale_for(f.row_max(), bits)
        if i > 0:
            cin = f.weight.shape[1]
            layers.append(_dif(f"stages.{i}.quant", src, (cin, size, size), _step(st.quant), prev_sigma, grid=True))
            src = f"stages.{i}.quant"
            if st.pool:
                size //= 2
                layers.append(Layer(f"stages.{i}.pool", "maxpool", (src,), (cin, size, size),
                                    {"kernel": 2, "stride": 2, "padding": 0}))
                src = f"stages.{i}.pool"
        w, b = _integer(f, sigma, bits)
        layers.append(Layer(f"stages.{i}", "encode_conv" if i == 0 else "conv", (src,), (w.shape[0], size, size),
                            {"stride": 1, "padding": 1, **({} if i == 0 else {"layout": "grid"})},
                            {"weight": w, "bias": b}))
        src = f"stages.{i}"
        prev_sigma = sigma
    n = size * size
    layers.append(Layer("tokens", "flatten", (src,), (n, dim)))
    resid = "tokens"

    def linear(name: str, src: str, f: Folded, sigma: np.ndarray) -> str:
        w, b = _integer(f, sigma, bits)
        layers.append(Layer(name, "linear", (src,), (n, w.shape[0]), {}, {"weight": w, "bias": b}))
        return name

    def add(name: str, a: str, b: str) -> str:
        layers.append(Layer(name, "add", (a, b), (n, dim)))
        return name

    # --- relative position module ----------------------------------------------------------------
    layers.append(_dif("rpe_quant", resid, (n, dim), _step(model.rpe_quant), sigma_res, grid=False))
    w, b = _integer(rpe, sigma_res, bits)
    layers.append(Layer("rpe", "conv", ("rpe_quant",), (n, dim),
                        {"stride": 1, "padding": 1, "layout": "tokens", "grid": [size, size]},
                        {"weight": w, "bias": b}))
    resid = add("rpe_add", resid, "rpe")

    # --- blocks ----------------------------------------------------------------------------------
    dh = dim // heads
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}"
        at = blk.attn
        layers.append(_dif(f"{p}.attn.quant_in", resid, (n, dim), _step(at.quant_in), sigma_res, grid=False))
        s_in = _step(at.quant_in)
        for nm in ("q", "k", "v"):
            f = fold(getattr(at, nm), s_in)
            sigma = _scale_for(f.row_max(), bits)
            linear(f"{p}.attn.{nm}", f"{p}.attn.quant_in", f, sigma)
            q = getattr(at, f"quant_{nm}")
            layers.append(_dif(f"{p}.attn.quant_{nm}", f"{p}.attn.{nm}", (n, dim), _step(q), sigma, grid=False))
        s_q, s_k, s_v = _step(at.quant_q), _step(at.quant_k), _step(at.quant_v)
        s_a, s_o = _step(at.quant_attn), _step(at.quant_out)
        _attention(layers, f"{p}.attn.scores", (f"{p}.attn.quant_q", f"{p}.attn.quant_k"), "q_kT", heads,
                   (heads, n, n), f"{p}.attn.quant_attn", s_a * n * math.sqrt(dh) / (s_q * s_k))
        _attention(layers, f"{p}.attn.values", (f"{p}.attn.quant_attn", f"{p}.attn.quant_v"), "attn_v", heads,
                   (n, dim), f"{p}.attn.quant_out", s_o / (s_a * s_v))
        linear(f"{p}.attn.proj", f"{p}.attn.quant_out", projs[i], sigma_res)
        resid = add(f"{p}.attn_add", resid, f"{p}.attn.proj")

        ml = blk.mlp
        layers.append(_dif(f"{p}.mlp.quant1", resid, (n, dim), _step(ml.quant1), sigma_res, grid=False))
        f1 = fold(ml.fc1, _step(ml.quant1))
        sigma1 = _scale_for(f1.row_max(), bits)
        linear(f"{p}.mlp.fc1", f"{p}.mlp.quant1", f1, sigma1)
        layers.append(_dif(f"{p}.mlp.quant2", f"{p}.mlp.fc1", (n, f1.weight.shape[0]), _step(ml.quant2), sigma1, grid=False))
        linear(f"{p}.mlp.fc2", f"{p}.mlp.quant2", fc2s[i], sigma_res)
        resid = add(f"{p}.mlp_add", resid, f"{p}.mlp.fc2")

    # --- head: logits = (s_h / N) W Σ_tokens n + b, one scale for all classes ----------------------
    layers.append(_dif("head_quant", resid, (n, dim), _step(model.head_quant), sigma_res, grid=False))
    hw = model.head.weight.detach().double().numpy() * _step(model.head_quant) / n
    hb = model.head.bias.detach().double().numpy()
    sigma_h = _scale_for(np.array([np.abs(hw).max()]), bits)
    w, b = _integer(Folded(hw, hb), np.full(hw.shape[0], sigma_h[0]), bits)
    layers.append(Layer("head", "head", ("head_quant",), (mc.num_classes,), {}, {"weight": w, "bias": b}))

    art = Artifact(
        name=name or cfg.name,
        T=T,
        delay=T - 1 if delay is None else delay,
        input=InputSpec(mc.in_channels, mc.image_size, mc.image_size, dinfo.max_value, in_scale, cfg.data.name),
        num_classes=mc.num_classes,
        weight_bits=bits,
        layers=layers,
        output="head",
        model={"arch": mc.arch, "depth": mc.depth, "dim": dim, "heads": heads, "mlp_ratio": mc.mlp_ratio,
               "levels": T, "tokens": n, "config": cfg.to_dict()},
        metrics=dict(metrics or {}),
        created_by=f"csdformer {__version__}",
    )
    validate(art)
    return art


def _attention(layers: list[Layer], name: str, inputs: tuple[str, str], operands: str, heads: int,
               shape: tuple[int, ...], quant: str, theta_real: float) -> None:
    """A TDEC product and the DIF layer after it; the threshold absorbs every constant."""
    shift = max(0, math.ceil(math.log2(THETA_MIN / theta_real))) if theta_real > 0 else 0
    theta = np.array(max(1, round(theta_real * 2**shift)), dtype=np.int32)
    layers.append(Layer(name, "tdec_matmul", inputs, shape, {"operands": operands, "heads": heads, "shift": shift}))
    layers.append(Layer(quant, "dif", (name,), shape, {}, {"threshold": theta, "v0": np.asarray(theta // 2, dtype=np.int32)}))
