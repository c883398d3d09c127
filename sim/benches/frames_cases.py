"""Bench cases (unit + data + meta) for the frame-stream cocotb benches (``accumulate``,
``encode_conv``, ``tdec_matmul``; see :func:`csdformer.sim.benches.accumulate.frames_bench`);
no cocotb import.

Shared by the pytest launchers (``tests/test_hw_{accumulate,encode_conv,tdec_matmul}_cocotb.py``)
and ``bench/hw_simspeed.py``. Each ``*_PARAMS`` dict maps a label to the parameter set a launcher
runs; each ``*_case(p, seed, ...)`` returns ``(unit, data, meta)`` for
:func:`csdformer.sim.benchlib.runner.run_bench`. :func:`frames_case` splits per-frame input words,
expected beats and model cycles into the bench's two phases.
"""

from __future__ import annotations

import numpy as np

from ...hw.accumulate import SpikeAccumulator, frame_events, pixel_events
from ...hw.accumulate import cycles as accumulate_cycles
from ...hw.encode_conv import EncodeConv
from ...hw.encode_conv import cycles as encode_conv_cycles
from ...hw.tdec_matmul import TdecMatmul, operand_views
from ...hw.tdec_matmul import cycles as tdec_matmul_cycles
from .. import golden
from ..synaptic import conv_frames, encode_frames, linear_frames

TIMED = 400  # frames of phase 0 (no idle/backpressure, cycles measured)
SPARSITY = (0.0, 0.02, 0.1, 0.3, 0.6, 1.0)  # spike probability, drawn per window


def frames_case(inputs: dict[str, list[list[int]]], expected: list[np.ndarray], model: list[int], *, lanes: int,
                width: int, signed: bool, timed: int = TIMED, idle: float = 0.15, stall: float = 0.15):
    """Bench ``data``/``meta`` from per-frame input words, expected beats and model cycles."""
    data, meta = {}, dict(inputs=list(inputs), lanes=lanes, width=width, signed=signed, idle=idle, stall=stall,
                          model_cycles=int(sum(model[:timed])))
    for phase, sl in enumerate((slice(0, timed), slice(timed, None))):
        for s, frames in inputs.items():
            words = [w for f in frames[sl] for w in f]
            assert all(0 <= w < 2**63 for w in words)
            data[f"{s}_{phase}"] = np.array(words, dtype=np.int64)
        exp = expected[sl]
        data[f"expected_{phase}"] = np.concatenate(exp).reshape(-1, lanes) if exp else np.zeros((0, lanes), np.int64)
    return data, meta


def random_weights(rng, shape, wbits):
    """Full-range signed weights with edge rows: one all +max, one all −max (max-magnitude)."""
    wmax = 2 ** (wbits - 1) - 1
    w = rng.integers(-wmax, wmax + 1, shape)
    w[0] = wmax
    if shape[0] > 1:
        w[1] = -wmax
    return w


def random_spikes(rng, frames: int, T: int, shape) -> np.ndarray:
    """Seeded spike frames (``frames`` rounded up to whole windows); sparsity drawn per window;
    the first windows all-zero and all-one."""
    nwin = -(-frames // T)
    p = rng.choice(SPARSITY, size=nwin)
    p[:2] = (0.0, 1.0)
    s = rng.random((nwin, T) + tuple(shape)) < p.reshape((-1, 1) + (1,) * len(shape))
    return s.reshape((nwin * T,) + tuple(shape)).astype(np.uint8)


# --- accumulate: SpikeAccumulator (conv or linear) ------------------------------------------------

ACCUMULATE_FRAMES = 2000

ACCUMULATE_PARAMS = {
    "conv-s1p1-l8-T4": dict(kind="conv", M=5, C=2, H=4, W=4, stride=1, padding=1, T=4, lanes=8, wbits=8),
    "conv-s2p1-l4-T2": dict(kind="conv", M=3, C=2, H=4, W=4, stride=2, padding=1, T=2, lanes=4, wbits=6),
    "linear-l4-T3": dict(kind="linear", M=10, K=12, rows=3, T=3, lanes=4, wbits=4),
}


def accumulate_unit(p, rng):
    """A random :class:`SpikeAccumulator` for parameter set ``p``; returns ``(unit, w, b)``."""
    w = random_weights(rng, (p["M"], p["K"]) if p["kind"] == "linear" else (p["M"], p["C"], 3, 3), p["wbits"])
    b = rng.integers(-300, 301, p["M"])
    if p["kind"] == "linear":
        return SpikeAccumulator.linear(w, b, rows=p["rows"], T=p["T"], lanes=p["lanes"]), w, b
    return SpikeAccumulator(w, b, (p["C"], p["H"], p["W"]), T=p["T"], lanes=p["lanes"], stride=p["stride"],
                            padding=p["padding"]), w, b


def accumulate_case(p, seed: int = 0, frames: int = ACCUMULATE_FRAMES):
    """Unit, bench data and meta for one accumulate parameter set."""
    rng = np.random.default_rng(seed)
    unit, w, b = accumulate_unit(p, rng)
    T = p["T"]
    if p["kind"] == "linear":
        s = random_spikes(rng, frames, T, (p["rows"], p["K"]))
        frames = len(s)
        win = s.reshape((-1, T) + s.shape[1:]).swapaxes(0, 1)  # (T, windows, rows, K)
        cur = linear_frames(win, w, b).swapaxes(0, 1).reshape(frames, p["rows"], p["M"])
        cur = cur.transpose(0, 2, 1)[..., None]  # (frames, M, rows, 1)
        grids = s.transpose(0, 2, 1)[..., None]  # (frames, K, rows, 1)
    else:
        s = random_spikes(rng, frames, T, (p["C"], p["H"], p["W"]))
        frames = len(s)
        win = s.reshape((-1, T) + s.shape[1:]).swapaxes(0, 1)
        cur = conv_frames(win, w, b, p["stride"], p["padding"]).swapaxes(0, 1).reshape((frames,) + (p["M"], unit.Ho, unit.Wo))
        grids = s
    events = [frame_events(g) for g in grids]
    data, meta = frames_case({"i_stream": [unit.frame_words(e) for e in events]},
                             [unit.output_beats(c[None]) for c in cur],
                             [accumulate_cycles(unit, [len(e)]) for e in events],
                             lanes=unit.lanes, width=unit.width, signed=True)
    return unit, data, meta


# --- encode_conv: EncodeConv (multi-bit image in, T frames out) -----------------------------------

ENCODE_IMAGES = 2000
ENCODE_TIMED = 300
DENSITY = (0.0, 0.1, 0.3, 0.6, 1.0)  # probability of a non-zero pixel, drawn per image

ENCODE_PARAMS = {
    "enc-s1p1-l4-T2-max3": dict(M=3, C=1, H=3, W=3, stride=1, padding=1, max_value=3, T=2, lanes=4, wbits=8),
    "enc-s2p1-l4-T4-max15": dict(M=3, C=1, H=3, W=3, stride=2, padding=1, max_value=15, T=4, lanes=4, wbits=6),
    "enc-s1p0-l8-T1-max255": dict(M=6, C=1, H=3, W=3, stride=1, padding=0, max_value=255, T=1, lanes=8, wbits=8),
}


def encode_conv_case(p, seed: int = 0, images: int = ENCODE_IMAGES):
    """Unit, bench data and meta for one encode_conv parameter set."""
    rng = np.random.default_rng(seed)
    w = random_weights(rng, (p["M"], p["C"], 3, 3), p["wbits"])
    b = rng.integers(-1000, 1001, p["M"])
    unit = EncodeConv(w, b, (p["C"], p["H"], p["W"]), max_value=p["max_value"], T=p["T"], lanes=p["lanes"],
                      stride=p["stride"], padding=p["padding"])
    shape = (images, p["C"], p["H"], p["W"])
    dens = rng.choice(DENSITY, size=images).reshape(-1, 1, 1, 1)
    img = np.where(rng.random(shape) < dens, rng.integers(1, p["max_value"] + 1, shape), 0)
    img[0] = 0
    img[1] = p["max_value"]  # edge cases: all-zero and all-max images
    cur = encode_frames(img, w, b, p["T"], p["stride"], p["padding"]).swapaxes(0, 1)  # (images, T, M, H', W')
    events = [pixel_events(im) for im in img]
    data, meta = frames_case({"i_stream": [unit.frame_words(e) for e in events]},
                             [unit.output_beats(c) for c in cur],
                             [encode_conv_cycles(unit, [v for *_, v in e]) for e in events],
                             lanes=unit.lanes, width=unit.width, signed=True, timed=ENCODE_TIMED)
    return unit, data, meta


# --- tdec_matmul: TdecMatmul (q·kᵀ or attn·v per head, << shift) ----------------------------------

MATMUL_FRAMES = 2000

MATMUL_PARAMS = {
    "q_kT-h2-n4-c4-l4-T4-s1": dict(operands="q_kT", heads=2, tokens=4, channels=4, T=4, lanes=4, shift=1),
    "attn_v-h2-n4-c6-l2-T2": dict(operands="attn_v", heads=2, tokens=4, channels=6, T=2, lanes=2, shift=0),
    "q_kT-h1-n3-c5-l8-T3-s2": dict(operands="q_kT", heads=1, tokens=3, channels=5, T=3, lanes=8, shift=2),
}


def tdec_matmul_case(p, seed: int = 0, frames: int = MATMUL_FRAMES):
    """Unit, bench data and meta for one tdec_matmul parameter set."""
    p = dict(p)
    rng = np.random.default_rng(seed)
    ops, heads, n, c, T = p["operands"], p["heads"], p["tokens"], p["channels"], p["T"]
    unit = TdecMatmul.for_layer(ops, heads=heads, tokens=n, channels=c, T=T, lanes=p["lanes"], shift=p["shift"])
    a = random_spikes(rng, frames, T, (n, c) if ops == "q_kT" else (heads, n, n))
    b = random_spikes(rng, frames, T, (n, c))
    frames = len(a)
    av, bv = operand_views(ops, a, b, heads)  # (frames, heads, rows, inner), (frames, heads, inner, cols)
    win = lambda x: x.reshape((-1, T) + x.shape[1:]).swapaxes(0, 1)  # noqa: E731  (T, windows, ...)
    prod = golden.tdec_matmul(win(av), win(bv)).swapaxes(0, 1).reshape((frames,) + (heads, unit.rows, unit.cols))
    prod = prod << p["shift"]
    data, meta = frames_case({"a_stream": [unit.a_words(f[None]) for f in av],
                              "b_stream": [unit.b_words(f[None]) for f in bv]},
                             [unit.output_beats(f[None]) for f in prod],
                             [tdec_matmul_cycles(unit, 1)] * frames,
                             lanes=unit.lanes, width=unit.width, signed=False)
    return unit, data, meta
