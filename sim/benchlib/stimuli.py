"""Seeded random stimuli shared by the launchers (pure numpy; no cocotb).

:func:`current_windows` makes integer current windows with varied sparsity and magnitude plus
the edge cases the issue names (all-zero, all-one, all-minimum/negative, maximum magnitude,
alternating extremes); :func:`spike_windows` makes binary spike windows with varied density
(all-zero and all-one included).
"""

from __future__ import annotations

import numpy as np

__all__ = ["current_windows", "spike_windows"]


def current_windows(rng: np.random.Generator, windows: int, shape, lo: int, hi: int) -> np.ndarray:
    """int64 ``(windows, *shape)`` currents in ``lo..hi``; the first windows are edge cases.

    Edge windows (in order): zeros, ones (clipped to ``hi``), all ``lo``, all ``hi``, alternating
    ``lo``/``hi``, then random windows whose density (fraction of non-zero values, 0.05..1) and
    magnitude scale (1..full range) are drawn per window.
    """
    shape = tuple(int(s) for s in shape)
    out = np.zeros((windows,) + shape, dtype=np.int64)
    n = int(np.prod(shape))
    edges = [
        np.zeros(n),
        np.full(n, min(1, hi)),
        np.full(n, lo),
        np.full(n, hi),
        np.where(np.arange(n) % 2 == 0, lo, hi),
    ]
    for w in range(windows):
        if w < len(edges):
            out[w] = np.asarray(edges[w], dtype=np.int64).reshape(shape)
            continue
        density = rng.choice([0.05, 0.2, 0.5, 1.0])
        scale = rng.choice([1.0, 0.1, 0.01]) if hi - lo > 200 else 1.0
        a, b = int(np.floor(lo * scale)), int(np.ceil(hi * scale))
        vals = rng.integers(max(a, lo), min(b, hi) + 1, n)
        vals[rng.random(n) >= density] = 0
        out[w] = vals.reshape(shape)
    return out


def spike_windows(rng: np.random.Generator, windows: int, shape) -> np.ndarray:
    """uint8 ``(windows, *shape)`` spikes; window 0 all-zero, window 1 all-one, then densities
    drawn per window from 0.02..0.9."""
    shape = tuple(int(s) for s in shape)
    out = np.zeros((windows,) + shape, dtype=np.uint8)
    for w in range(windows):
        if w == 1:
            out[w] = 1
        elif w > 1:
            out[w] = rng.random(shape) < rng.choice([0.02, 0.1, 0.3, 0.6, 0.9])
    return out
