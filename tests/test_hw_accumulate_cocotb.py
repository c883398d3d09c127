"""cocotb bench of the spike accumulator (sim/benches/accumulate.py) against the golden
synaptic ops (sim/synaptic.py), under Verilator: 3 parameter sets × 2,000 random frames, cycles
within 5 % of the cycle model, and a corrupted RTL that must fail.

:func:`frames_case` (shared with the encode_conv and tdec_matmul launchers) splits a case into
the bench's two phases.
"""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw.accumulate import SpikeAccumulator, cycles, frame_events
from csdformer.sim.benchlib import runner
from csdformer.sim.synaptic import conv_frames, linear_frames

FRAMES = 2000
TIMED = 400  # frames of phase 0 (no idle/backpressure, cycles measured)
SPARSITY = (0.0, 0.02, 0.1, 0.3, 0.6, 1.0)  # spike probability, drawn per window

PARAMS = {
    "conv-s1p1-l8-T4": dict(kind="conv", M=5, C=2, H=4, W=4, stride=1, padding=1, T=4, lanes=8, wbits=8),
    "conv-s2p1-l4-T2": dict(kind="conv", M=3, C=2, H=4, W=4, stride=2, padding=1, T=2, lanes=4, wbits=6),
    "linear-l4-T3": dict(kind="linear", M=10, K=12, rows=3, T=3, lanes=4, wbits=4),
}


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


def run_corrupted(unit, name: str, data, meta, corrupt: dict, sim: str | None = None) -> tuple[bool, dict]:
    """Run bench ``name`` on ``FlipOutputBit(unit, **corrupt)``; return ``(passed, result)``."""
    res = runner.run_bench(unit, name, f"csdformer.sim.benches.{name}", data=data, meta=meta, corrupt=corrupt,
                           tag="corrupt", sim=sim)
    return res.passed, res.result


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


def make_unit(p, rng):
    w = random_weights(rng, (p["M"], p["K"]) if p["kind"] == "linear" else (p["M"], p["C"], 3, 3), p["wbits"])
    b = rng.integers(-300, 301, p["M"])
    if p["kind"] == "linear":
        return SpikeAccumulator.linear(w, b, rows=p["rows"], T=p["T"], lanes=p["lanes"]), w, b
    return SpikeAccumulator(w, b, (p["C"], p["H"], p["W"]), T=p["T"], lanes=p["lanes"], stride=p["stride"],
                            padding=p["padding"]), w, b


def case(p, seed: int = 0, frames: int = FRAMES):
    """Unit, bench data and meta for one parameter set."""
    rng = np.random.default_rng(seed)
    unit, w, b = make_unit(p, rng)
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
                             [cycles(unit, [len(e)]) for e in events],
                             lanes=unit.lanes, width=unit.width, signed=True)
    return unit, data, meta


@pytest.mark.parametrize("label", list(PARAMS))
def test_accumulate_bench(label):
    unit, data, meta = case(PARAMS[label], seed=len(label))
    res = runner.run_bench(unit, "accumulate", "csdformer.sim.benches.accumulate", data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["compared"] >= FRAMES * unit.M * unit.positions
    assert res.result["cycles_ok"]


def test_accumulate_bench_catches_flipped_bit():
    unit, data, meta = case(PARAMS["linear-l4-T3"], seed=3, frames=60)
    passed, result = run_corrupted(unit, "accumulate", data, meta, {"bit": 1, "beat": 37})
    assert not passed
    assert result.get("mismatches", 0) > 0, result
