"""Whole-network golden runner over an artifact, vectorized over a batch of images.

Two modes:

- ``snn``: the time-stepped spiking network in the window domain (SPEC §5), any delay
  ``0 <= D <= T-1``. Tensors are ``(T, B, *shape)`` frames.
- ``qann``: the count-domain integer QANN. Tensors are ``(B, *shape)`` totals (spike counts for
  spike tensors, window sums for currents).

Both return integer logits and every spike tensor's per-neuron spike counts; with ``D = T-1``
they are equal (SPEC §5, exactness).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..artifact import Artifact, Layer
from . import golden

MODES = ("snn", "qann")


@dataclass
class Result:
    """What a run computes for a batch."""

    logits: np.ndarray  # int64 (B, classes)
    counts: dict[str, np.ndarray]  # spike-tensor layer name → int64 (B, *shape) spike counts
    mode: str
    delay: int | None
    frames: dict[str, np.ndarray] | None = None  # traced layers' whole tensors (see ``trace``)

    @property
    def predictions(self) -> np.ndarray:
        return predict(self.logits)


def predict(logits: np.ndarray) -> np.ndarray:
    """argmax over classes, lowest index on ties (SPEC §5): :func:`golden.argmax`."""
    return golden.argmax(logits)


def synaptic_args(layer: Layer) -> tuple[tuple, dict]:
    """The arguments of :func:`golden.synaptic_frames` / :func:`golden.synaptic_counts` that a
    synaptic layer fixes: ``(kind, weight, bias)`` and ``{stride, padding, grid}``."""
    at = layer.attrs
    return (layer.kind, layer.arrays["weight"], layer.arrays["bias"]), {
        "stride": at.get("stride", 1), "padding": at.get("padding", 0),
        "grid": at["grid"] if at.get("layout") == "tokens" else None}


def tdec_args(layer: Layer) -> dict:
    """The keywords of :func:`golden.tdec_layer` that a ``tdec_matmul`` layer fixes."""
    return {k: layer.attrs[k] for k in ("operands", "heads", "shift")}


def _synaptic(layer: Layer, x: np.ndarray, T: int, frames: bool) -> np.ndarray:
    """A synaptic layer's current: :func:`golden.synaptic_frames` (bias at frame 1 only) or its
    count-domain twin."""
    (kind, w, b), kw = synaptic_args(layer)
    if frames:
        return golden.synaptic_frames(kind, w, b, x, T, **kw)
    return golden.synaptic_counts(kind, w, b, x, **kw)


def _tdec(layer: Layer, a: np.ndarray, b: np.ndarray, frames: bool) -> np.ndarray:
    kw = tdec_args(layer)
    return golden.tdec_layer(a, b, **kw) if frames else golden.tdec_layer_counts(a, b, **kw)


def run(artifact: Artifact, images: np.ndarray, *, mode: str = "snn", delay: int | None = None,
        keep: Callable[[Layer], bool] | None = None, trace: tuple[str, ...] = ()) -> Result:
    """Run a batch of images ``(B, C, H, W)`` (unsigned integer pixels) through the artifact.

    ``delay`` defaults to the artifact's; it is ignored in ``qann`` mode. ``keep`` chooses the
    spike layers whose counts are returned (default: every ``dif`` and ``maxpool`` layer).
    ``trace`` names layers whose whole output tensors are returned in ``frames``: ``(T, B, ...)``
    frames in ``snn`` mode, ``(B, ...)`` totals in ``qann`` mode (what a unit bench replays).
    """
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
    a = artifact
    T = a.T
    D = a.delay if delay is None else delay
    if mode == "snn" and not 0 <= D <= T - 1:
        raise ValueError(f"delay: must be in 0..T-1 = 0..{T - 1}, got {D}")
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != a.input.shape:
        raise ValueError(f"images: expected shape (B, {', '.join(map(str, a.input.shape))}), got {images.shape}")
    if images.size and (images.min() < 0 or images.max() > a.input.max_value):
        raise ValueError(f"images: pixel values must be in 0..{a.input.max_value}")
    frames = mode == "snn"
    keep = keep or (lambda layer: layer.kind in ("dif", "maxpool"))
    env: dict[str, np.ndarray] = {"image": images.astype(np.int64)}
    counts: dict[str, np.ndarray] = {}
    traced: dict[str, np.ndarray] = {}
    unknown = set(trace) - {layer.name for layer in a.layers}
    if unknown:
        raise ValueError(f"trace: unknown layer(s) {sorted(unknown)}")
    uses = _last_use(a)
    for i, layer in enumerate(a.layers):
        x = [env[s] for s in layer.inputs]
        k = layer.kind
        if k in ("encode_conv", "conv", "linear", "head"):
            y = _synaptic(layer, x[0], T, frames)
        elif k == "dif":
            th, v0 = layer.arrays["threshold"], layer.arrays["v0"]
            y = golden.dif(x[0], th, D, v0) if frames else golden.dif_counts(x[0], th, T, v0)
        elif k == "maxpool":
            op = golden.tdec_maxpool if frames else golden.maxpool_counts
            y = op(x[0], layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["padding"])
        elif k == "flatten":
            y = golden.flatten(x[0])
        elif k == "add":
            y = golden.add(x[0], x[1])
        elif k == "tdec_matmul":
            y = _tdec(layer, x[0], x[1], frames)
        else:  # validation makes this unreachable
            raise AssertionError(k)
        env[layer.name] = y
        if layer.name in trace:
            traced[layer.name] = y.copy()
        if keep(layer):
            counts[layer.name] = y.sum(axis=0, dtype=np.int64) if frames else y.astype(np.int64)
        for s in layer.inputs:  # free what no later layer reads
            if uses[s] == i:
                del env[s]
    out = env[a.output]
    logits = golden.logits(out) if frames else out
    return Result(logits=logits.astype(np.int64), counts=counts, mode=mode, delay=D if frames else None,
                  frames=traced)


def _last_use(a: Artifact) -> dict[str, int]:
    last = {}
    for i, layer in enumerate(a.layers):
        for s in layer.inputs:
            last[s] = i
    last[a.output] = len(a.layers)
    return last


def run_batches(artifact: Artifact, images: np.ndarray, *, batch_size: int = 128, progress: bool = False,
                **kw) -> Iterator[Result]:
    """:func:`run` over a large set in batches (optionally with a progress bar)."""
    from ..progress import progress as _progress

    starts = range(0, len(images), batch_size)
    # a bar on a terminal, plain lines (no carriage returns) in a log: csdformer.progress
    starts = _progress(starts, len(starts), f"golden {kw.get('mode', 'snn')}", unit="batches", enabled=progress)
    for s in starts:
        yield run(artifact, images[s : s + batch_size], **kw)


def evaluate(artifact: Artifact, images: np.ndarray, labels: np.ndarray | None = None, *,
             batch_size: int = 128, progress: bool = False, **kw) -> dict:
    """Predictions (and accuracy when labels are given) over a whole set."""
    preds = np.concatenate([r.predictions for r in run_batches(artifact, images, batch_size=batch_size,
                                                                progress=progress, **kw)] or [np.zeros(0, int)])
    out = {"n": int(len(preds)), "predictions": preds}
    if labels is not None:
        out["accuracy"] = float(np.mean(preds == np.asarray(labels))) if len(preds) else float("nan")
    return out
