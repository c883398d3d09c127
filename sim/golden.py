"""Golden ops: the integer semantics of SPEC §5, in numpy. These define every bit the hardware
computes. Time is always axis 0 (``T`` frames, the window domain); other axes are free.

Each op comes in two forms: the time-stepped one (frames in, frames out) and its count-domain
twin (``*_counts``: totals in, totals out), which is what the integer QANN computes. With delay
``D = T - 1`` the two agree exactly.

Integer products are computed in float64 where that is faster (BLAS): every value stays far
below 2**53, so the result is exact, and it is converted back to int64.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "synapse",
    "synaptic_frames",
    "synaptic_counts",
    "add",
    "flatten",
    "transpose",
    "tdec_layer",
    "tdec_layer_counts",
    "logits",
    "argmax",
    "dif",
    "dif_counts",
    "cumulate",
    "tdec_matmul",
    "tdec_matmul_counts",
    "tdec_maxpool",
    "maxpool_counts",
    "int_matmul",
    "conv2d",
]

_EXACT64 = 2**53
_EXACT32 = 2**24


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer ``a @ b`` (broadcast over leading axes), via float BLAS when safe.

    Every partial sum is bounded by ``max|a| · max|b| · K``; below 2**24 float32 is exact, below
    2**53 float64 is, and above that it falls back to int64 arithmetic.
    """
    a, b = np.asarray(a), np.asarray(b)
    k = a.shape[-1]
    # Bounds in Python ints: np.abs wraps at the dtype minimum (np.abs(int32(-2**31)) < 0).
    amax = max(int(a.max(initial=0)), -int(a.min(initial=0)))
    bmax = max(int(b.max(initial=0)), -int(b.min(initial=0)))
    bound = amax * bmax * max(k, 1)
    dt = np.float32 if bound < _EXACT32 else np.float64 if bound < _EXACT64 else np.int64
    if b.ndim == 2 and a.ndim > 2:
        # One large GEMM instead of a stack of small ones.
        out = np.matmul(a.reshape(-1, k).astype(dt), b.astype(dt))
        return out.astype(np.int64).reshape(a.shape[:-1] + (b.shape[1],))
    return np.matmul(a.astype(dt), b.astype(dt)).astype(np.int64)


def conv2d(x, weight, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Exact integer 2-D convolution (cross-correlation, as PyTorch) over the last three axes.

    ``x (..., C, H, W)`` integer, ``weight (M, C, k, k)`` integer → int64 ``(..., M, H', W')``;
    zero padding.
    """
    x = np.asarray(x)
    lead = x.shape[:-3]
    c, h, w = x.shape[-3:]
    m, c2, kh, kw = weight.shape
    if c2 != c:
        raise ValueError(f"weight: expects {c2} input channels, got {c}")
    x = x.reshape((-1, c, h, w))
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    ho, wo = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, ho * wo, c * kh * kw)
    out = int_matmul(cols, np.asarray(weight).reshape(m, -1).T)  # (B, Ho*Wo, M)
    return out.transpose(0, 2, 1).reshape(lead + (m, ho, wo))


def dif(currents, threshold, delay: int, v0=None) -> np.ndarray:
    """Delayed integrate-and-fire neurons (paper Algorithm 1), reset by subtraction.

    Parameters
    ----------
    currents : int array ``(T, *shape)``
        Input current frames.
    threshold : int scalar or array broadcastable to ``shape``
        Firing threshold ``θ > 0``.
    delay : int
        ``D`` in ``0 .. T-1``: the neuron may fire only from local step ``D + 1`` on, and runs
        ``D`` extra fire-only steps so that it still emits ``T`` output frames.
    v0 : int scalar or array, optional
        Initial membrane potential; default ``threshold // 2``.

    Returns
    -------
    uint8 array ``(T, *shape)``: output spike frames (frame ``t - D`` of local step ``t``).
    """
    currents = np.asarray(currents)
    if currents.ndim < 1 or not np.issubdtype(currents.dtype, np.integer):
        raise ValueError("currents: expected an integer array (T, ...)")
    T = currents.shape[0]
    if not 0 <= delay <= T - 1:
        raise ValueError(f"delay: must be in 0..{T - 1}, got {delay}")
    theta = np.asarray(threshold, dtype=np.int64)
    if np.any(theta <= 0):
        raise ValueError("threshold: must be > 0")
    v = np.broadcast_to(theta // 2 if v0 is None else np.asarray(v0, dtype=np.int64), currents.shape[1:]).astype(np.int64)
    theta = np.broadcast_to(theta, currents.shape[1:])
    out = np.zeros(currents.shape, dtype=np.uint8)
    for t in range(T + delay):
        if t < T:
            v += currents[t]  # charge
        if t >= delay:
            fire = v >= theta  # fire
            v -= np.where(fire, theta, 0)  # reset by subtraction
            out[t - delay] = fire
    return out


def dif_counts(total, threshold, T: int, v0=None) -> np.ndarray:
    """Spike count of a DIF neuron with ``D = T - 1``: ``clip(floor((ΣI + v0) / θ), 0, T)``."""
    theta = np.asarray(threshold, dtype=np.int64)
    v = theta // 2 if v0 is None else np.asarray(v0, dtype=np.int64)
    return np.clip(np.floor_divide(np.asarray(total, dtype=np.int64) + v, theta), 0, T)


def cumulate(spikes) -> np.ndarray:
    """Cumulative spike counts ``C(t) = Σ_{τ≤t} s(τ)`` over the frames (axis 0), int64: what TDEC
    (``Acum``, ``Bcum``) and the TDEC max-pool integrate."""
    return np.cumsum(np.asarray(spikes), axis=0, dtype=np.int64)


def tdec_matmul(a, b) -> np.ndarray:
    """Temporally decomposed product of two spike sequences (paper §3.3.2, App. B.2).

    ``P(t) = a(t) · Bcum(t) + Acum(t-1) · b(t)`` with ``Acum(t) = Σ_{τ≤t} a(τ)``, so that
    ``Σ_t P(t) = Acum(T) · Bcum(T)``. ``a (T, ..., N, K)``, ``b (T, ..., K, M)`` → int64
    ``(T, ..., N, M)``.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of frames, got {a.shape[0]} and {b.shape[0]}")
    acum, bcum = cumulate(a), cumulate(b)
    aprev = np.concatenate([np.zeros_like(acum[:1]), acum[:-1]], axis=0)
    return int_matmul(a, bcum) + int_matmul(aprev, b)


def tdec_matmul_counts(a_counts, b_counts) -> np.ndarray:
    """Count-domain twin of :func:`tdec_matmul`: the product of the spike counts."""
    return int_matmul(np.asarray(a_counts), np.asarray(b_counts))


def _maxpool2d(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Max-pool over the last two axes of a non-negative integer array (padding reads as 0)."""
    h, w = x.shape[-2:]
    if padding:
        pad = [(0, 0)] * (x.ndim - 2) + [(padding, padding), (padding, padding)]
        x = np.pad(x, pad)
    ho = (h + 2 * padding - kernel) // stride + 1
    wo = (w + 2 * padding - kernel) // stride + 1
    out = None
    for i in range(kernel):
        for j in range(kernel):
            win = x[..., i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
            out = win.copy() if out is None else np.maximum(out, win)
    return out


def maxpool_counts(counts, kernel: int, stride: int | None = None, padding: int = 0) -> np.ndarray:
    """Max-pool of spike counts over the last two axes (the count-domain twin of tdec_maxpool)."""
    return _maxpool2d(np.asarray(counts), kernel, kernel if stride is None else stride, padding)


def tdec_maxpool(spikes, kernel: int, stride: int | None = None, padding: int = 0) -> np.ndarray:
    """Temporally decomposed max-pool: ``out(t) = MP(C(t)) - MP(C(t-1))``, ``C`` cumulative counts.

    ``spikes (T, ..., H, W)`` binary → uint8 binary ``(T, ..., H', W')`` whose sum over time is
    the max-pool of the spike counts. Padding contributes zero counts.
    """
    spikes = np.asarray(spikes)
    stride = kernel if stride is None else stride
    if 2 * padding > kernel:
        raise ValueError("padding: must be at most kernel/2")
    mp = _maxpool2d(cumulate(spikes), kernel, stride, padding)
    prev = np.concatenate([np.zeros_like(mp[:1]), mp[:-1]], axis=0)
    return (mp - prev).astype(np.uint8)


# ---- layers: what the whole-network runner (sim/runner.py) and the hardware's phase units
# (hw/*.py ``GOLDEN``) are both judged by, one definition each --------------------------------


def flatten(x) -> np.ndarray:
    """A grid ``(..., C, H, W)`` as tokens ``(..., H·W, C)``."""
    x = np.asarray(x)
    return np.swapaxes(x.reshape(x.shape[:-2] + (-1,)), -1, -2)


def _to_grid(x: np.ndarray, grid) -> np.ndarray:
    """Tokens ``(..., N, C)`` as a grid ``(..., C, H, W)`` (the inverse of :func:`flatten`)."""
    return np.swapaxes(x, -1, -2).reshape(x.shape[:-2] + (x.shape[-1],) + tuple(grid))


def transpose(x) -> np.ndarray:
    """The transpose of every frame (the last two axes): ``(..., N, C)`` → ``(..., C, N)``."""
    return np.swapaxes(np.asarray(x), -1, -2)


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """``(..., N, C)`` → ``(..., heads, N, C/heads)``."""
    return np.swapaxes(x.reshape(x.shape[:-1] + (heads, x.shape[-1] // heads)), -2, -3)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """``(..., heads, N, d)`` → ``(..., N, heads·d)``."""
    x = np.swapaxes(x, -2, -3)
    return x.reshape(x.shape[:-2] + (-1,))


def synapse(kind: str, weight, x, *, stride: int = 1, padding: int = 0, grid=None) -> np.ndarray:
    """The weight part of a synaptic layer (no bias), on any leading axes.

    ``kind``: ``encode_conv`` / ``conv`` (``x (..., C, H, W)``; with ``grid = (H, W)`` the conv of
    a token layout, ``x (..., N, C)`` → ``(..., N, M)``), ``linear`` (``x (..., K)``, ``weight
    (M, K)``) or ``head`` (``x (..., N, K)``: the tokens are summed first).
    """
    w, x = np.asarray(weight), np.asarray(x)
    if kind in ("encode_conv", "conv"):
        if grid is not None:
            return flatten(conv2d(_to_grid(x, grid), w, stride, padding))
        return conv2d(x, w, stride, padding)
    if kind == "linear":
        return int_matmul(x, w.T)
    if kind == "head":
        return int_matmul(x.sum(axis=-2, dtype=np.int64), w.T)
    raise ValueError(f"kind: not a synaptic layer: {kind!r}")


def _bias(kind: str, bias, grid) -> np.ndarray:
    b = np.asarray(bias, dtype=np.int64)
    return b.reshape(-1, 1, 1) if kind in ("encode_conv", "conv") and grid is None else b.reshape(-1)


def synaptic_frames(kind: str, weight, bias, x, T: int | None = None, *, stride: int = 1, padding: int = 0,
                    grid=None) -> np.ndarray:
    """A synaptic layer's current frames: :func:`synapse` of every frame, **the bias at frame 1
    only**. The encoding layer (``kind = "encode_conv"``) takes the image ``x (..., C, H, W)``
    (no time axis) and its whole current, bias included, arrives at frame 1 of ``T``; zeros after.
    Other kinds take spike frames ``x (T, ...)``. → int64 ``(T, ...)``."""
    y = synapse(kind, weight, x, stride=stride, padding=padding, grid=grid)
    if kind == "encode_conv":
        if T is None:
            raise ValueError("T: the encoding layer needs the number of frames")
        out = np.zeros((T,) + y.shape, dtype=np.int64)
        out[0] = y + _bias(kind, bias, grid)
        return out
    y[0] += _bias(kind, bias, grid)
    return y


def synaptic_counts(kind: str, weight, bias, x, *, stride: int = 1, padding: int = 0, grid=None) -> np.ndarray:
    """Count-domain twin of :func:`synaptic_frames`: :func:`synapse` of the totals plus the bias."""
    return synapse(kind, weight, x, stride=stride, padding=padding, grid=grid) + _bias(kind, bias, grid)


def add(a, b) -> np.ndarray:
    """The residual add: two currents (frames or totals) summed, int64."""
    return np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)


def _tdec_operands(a, b, operands: str, heads: int):
    a, b = np.asarray(a), np.asarray(b)
    if operands == "q_kT":
        return _split_heads(a, heads), transpose(_split_heads(b, heads))
    if operands == "attn_v":
        return a, _split_heads(b, heads)
    raise ValueError(f"operands: must be 'q_kT' or 'attn_v', got {operands!r}")


def _tdec_out(p: np.ndarray, operands: str, shift: int) -> np.ndarray:
    return (_merge_heads(p) if operands == "attn_v" else p) << shift


def tdec_layer(a, b, *, operands: str, heads: int, shift: int) -> np.ndarray:
    """A ``tdec_matmul`` layer over frames: :func:`tdec_matmul` per head, shifted left by ``shift``.

    ``q_kT``: ``a = q (T, ..., N, C)``, ``b = k (T, ..., N, C)`` → scores ``(T, ..., heads, N, N)``;
    ``attn_v``: ``a`` = scores ``(T, ..., heads, N, N)``, ``b = v (T, ..., N, C)`` → ``(T, ..., N, C)``
    (heads merged)."""
    a, b = _tdec_operands(a, b, operands, heads)
    return _tdec_out(tdec_matmul(a, b), operands, shift)


def tdec_layer_counts(a, b, *, operands: str, heads: int, shift: int) -> np.ndarray:
    """Count-domain twin of :func:`tdec_layer`."""
    a, b = _tdec_operands(a, b, operands, heads)
    return _tdec_out(tdec_matmul_counts(a, b), operands, shift)


def logits(frames) -> np.ndarray:
    """The logits: the head's current summed over the frames (axis 0), int64."""
    return np.asarray(frames).sum(axis=0, dtype=np.int64)


def argmax(logits) -> np.ndarray:
    """The predicted class: argmax over the last axis, the lowest index on ties (SPEC §5)."""
    return np.argmax(np.asarray(logits), axis=-1)
