"""Golden synaptic ops for the hardware benches: exact int64 current frames (SPEC §5).

Window-domain twins of what ``sim/runner.py`` computes for ``linear``/``conv``/``encode_conv``
layers, per layer and frame by frame, so that a unit bench can compare every output frame.
Time is axis 0 (``T`` frames). Built on :mod:`csdformer.sim.golden` (the judge).
"""

from __future__ import annotations

import numpy as np

from . import golden

__all__ = ["linear_frames", "conv_frames", "encode_frames"]


def linear_frames(spikes, weight, bias) -> np.ndarray:
    """``current(t) = spikes(t) @ Wᵀ + (t == 0) * b``.

    ``spikes (T, ..., K)`` binary, ``weight (M, K)``, ``bias (M,)`` → int64 ``(T, ..., M)``.
    """
    s = np.asarray(spikes, dtype=np.int64)
    out = golden.int_matmul(s, np.asarray(weight, dtype=np.int64).T)
    out[0] += np.asarray(bias, dtype=np.int64)
    return out


def conv_frames(spikes, weight, bias, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Frame-wise 2-D convolution, bias at frame 1 only.

    ``spikes (T, ..., C, H, W)`` binary, ``weight (M, C, k, k)``, ``bias (M,)`` → int64
    ``(T, ..., M, H', W')``.
    """
    out = golden.conv2d(np.asarray(spikes, dtype=np.int64), np.asarray(weight), stride, padding)
    out[0] += np.asarray(bias, dtype=np.int64).reshape(-1, 1, 1)
    return out


def encode_frames(image, weight, bias, T: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Encoding layer: the whole image current (conv + bias) at frame 1, zeros after.

    ``image (..., C, H, W)`` unsigned integers → int64 ``(T, ..., M, H', W')``.
    """
    y = golden.conv2d(np.asarray(image, dtype=np.int64), np.asarray(weight), stride, padding)
    y = y + np.asarray(bias, dtype=np.int64).reshape(-1, 1, 1)
    out = np.zeros((T,) + y.shape, dtype=np.int64)
    out[0] = y
    return out
