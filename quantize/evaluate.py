"""Accuracy of every stage of the reference path on one data split.

``float`` (quantizers as continuous clips, the weights as trained), ``qann`` (LSQ activations,
float weights: what was trained), ``int_qann`` (the artifact in the count domain: integer
weights and thresholds), and ``snn`` for each delay ``D = 0..T-1`` (the artifact, time-stepped).
The gap ``qann − int_qann`` is the cost of integer weights and thresholds; it is reported, not
hidden.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..artifact import Artifact
from ..datasets import load as load_dataset
from ..sim import runner
from .config import Config
from .model import CSDformer
from .train import accuracy


def torch_accuracies(model: CSDformer, cfg: Config, split: str = "test") -> dict[str, float]:
    x, y = load_dataset(cfg.data.name, split, cfg.data.root)
    x, y = torch.tensor(x), torch.tensor(y)
    from ..datasets import info

    mv = info(cfg.data.name).max_value
    model.eval()
    spiking = getattr(model, "spiking", None)  # a DirectSNN (train.direct): its QANN view, then its float SNN
    try:
        if spiking is not None:
            model.spiking = False
        model.set_quantized(False)
        f = accuracy(model, x, y, mv)
    finally:
        model.set_quantized(True)
    out = {"float": f, "qann": accuracy(model, x, y, mv)}
    if spiking is not None:
        model.spiking = True
        out["snn_torch"] = accuracy(model, x, y, mv)
    return out


def golden_accuracies(art: Artifact, images: np.ndarray, labels: np.ndarray, *, delays=None,
                      progress: bool = False) -> dict[str, Any]:
    """int-QANN and per-delay SNN accuracies, and how often SNN(D=T-1) matches the int-QANN."""
    q = runner.evaluate(art, images, labels, mode="qann", progress=progress)
    out: dict[str, Any] = {"int_qann": q["accuracy"], "snn": {}}
    delays = range(art.T) if delays is None else delays
    for d in delays:
        s = runner.evaluate(art, images, labels, mode="snn", delay=d, progress=progress)
        out["snn"][str(d)] = s["accuracy"]
        if d == art.T - 1:
            out["snn_equals_int_qann"] = float(np.mean(s["predictions"] == q["predictions"]))
    return out


def format_metrics(m: dict) -> str:
    """The accuracies of :func:`torch_accuracies` + :func:`golden_accuracies` as printed lines, in
    percent (the artifact's ``metrics`` keep the fractions)."""
    def pct(v):
        return "?" if v is None else f"{100 * v:.2f} %"

    snn = "  ".join(f"D={d}: {pct(v)}" for d, v in m.get("snn", {}).items())
    lines = [
        f"accuracy on the {m.get('split', 'test')} split (n={m.get('n')}): float {pct(m.get('float'))}  "
        f"qann {pct(m.get('qann'))}  int-qann {pct(m.get('int_qann'))}",
        f"snn   {snn}",
    ]
    if "snn_equals_int_qann" in m:
        lines.append(f"snn(D=T-1) predictions equal to int-qann: {m['snn_equals_int_qann'] * 100:.2f} %")
    return "\n".join(lines)
