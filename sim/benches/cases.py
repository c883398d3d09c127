"""Bench cases (unit + data + meta) for the cocotb benches of this package; no cocotb import.

Shared by the pytest launchers (``tests/test_hw_<unit>_cocotb.py``) and ``bench/hw_simspeed.py``.
Each ``*_PARAMS`` list holds the parameter sets a launcher runs; each ``*_case(...)`` returns
``(unit, data, meta)`` for :func:`csdformer.sim.benchlib.runner.run_bench` (seeded stimuli from
:mod:`csdformer.sim.benchlib.stimuli`, expected values from the unit's golden op).
"""

from __future__ import annotations

import numpy as np

from ...hw.dif import DIF, reference as dif_reference
from ...hw.residual_add import ResidualAdd, reference as add_reference
from ...hw.tdec_maxpool import TDECMaxPool, reference as maxpool_reference
from ..benchlib.stimuli import current_windows, spike_windows

BACKPRESSURE = {"idle": 0.3, "stall": 0.3}

# (label, neurons, lanes, T, D, current bounds, max threshold, windows)
DIF_PARAMS = [
    ("N13_P4_T4_D0", 13, 4, 4, 0, (-64, 63), 40, 500),
    ("N8_P8_T4_D3_wide", 8, 8, 4, 3, (-2048, 2047), 4000, 500),
    ("N20_P3_T2_D1", 20, 3, 2, 1, (-5, 5), 6, 1000),
    ("N7_P2_T1_D0", 7, 2, 1, 0, (-3, 3), 3, 2000),
]


def dif_case(N, P, T, D, bounds, theta_max, windows, seed):
    rng = np.random.default_rng(seed)
    theta = rng.integers(1, theta_max + 1, N)
    theta[0] = 1  # threshold 1 always present
    v0 = np.where(rng.random(N) < 0.5, theta // 2, rng.integers(-theta_max, theta_max + 1, N))
    cur = current_windows(rng, windows, (T, N), *bounds)
    unit = DIF(neurons=N, lanes=P, T=T, D=D, threshold=theta, v0=v0, current_bounds=bounds)
    data = {"currents": cur, "expected": dif_reference(cur, theta, D, v0)}
    meta = {"lanes": P, "in_width": unit.in_width, "model_cycles": unit.cycles(windows),
            "phase2_items": max(1, windows // 8), **BACKPRESSURE}
    return unit, data, meta


def dif_artifact_case(layer: str | None, neurons: int, lanes: int, windows: int, seed: int, D: int | None = None):
    """A DIF case with a shipped artifact's real thresholds, v0, T, D and current bounds (first
    ``neurons`` neurons of ``layer`` — the last dif layer if ``layer`` is None or absent —, in the
    unit's neuron order); random currents in the bounds."""
    from ...artifact import load
    from ...artifact import resolve_artifact, shipped_models

    art = load(resolve_artifact(shipped_models()[0]))
    names = [x.name for x in art.layers if x.kind == "dif"]
    layer = layer if layer in names else names[-1]  # default: the last dif layer
    full = DIF.from_artifact(art, layer, lanes=lanes, D=D)
    full._MustUse__silence = True  # only its parameters are used
    theta, v0 = full.threshold[:neurons], full.v0[:neurons]
    rng = np.random.default_rng(seed)
    from ...artifact import bounds

    lay = next(x for x in art.layers if x.name == layer)
    lo, hi = bounds(art)[lay.inputs[0]]["frame"]
    cur = current_windows(rng, windows, (full.T, neurons), lo, hi)
    unit = DIF(neurons=neurons, lanes=lanes, T=full.T, D=full.D, threshold=theta, v0=v0, current_bounds=(lo, hi))
    data = {"currents": cur, "expected": dif_reference(cur, theta, full.D, v0)}
    meta = {"lanes": lanes, "in_width": unit.in_width, "model_cycles": unit.cycles(windows),
            "phase2_items": max(1, windows // 8), **BACKPRESSURE}
    return unit, data, meta


# (label, C, H, W, lanes, T, kernel, stride, padding, windows)
MAXPOOL_PARAMS = [
    ("C6_4x4_P4_T4_k2", 6, 4, 4, 4, 4, 2, 2, 0, 500),
    ("C2_4x5_P2_T2_k3s2p1", 2, 4, 5, 2, 2, 3, 2, 1, 1000),
    ("C8_2x6_P8_T8_k2s1", 8, 2, 6, 8, 8, 2, 1, 0, 250),
    ("C2_4x4_P2_T1_k2", 2, 4, 4, 2, 1, 2, 2, 0, 2000),
]


def maxpool_case(C, H, W, P, T, k, s, p, windows, seed):
    rng = np.random.default_rng(seed)
    spikes = spike_windows(rng, windows, (T, C, H, W))
    unit = TDECMaxPool(channels=C, height=H, width=W, lanes=P, T=T, kernel=k, stride=s, padding=p)
    data = {"spikes": spikes, "expected": maxpool_reference(spikes, k, s, p)}
    meta = {"lanes": P, "out_hw": list(unit.out_shape[1:]), "model_cycles": unit.cycles(windows * T),
            "phase2_items": max(1, windows // 8), **BACKPRESSURE}
    return unit, data, meta


# (label, lanes, neurons, T, a bounds, b bounds, windows)
ADD_PARAMS = [
    ("P4_N16_T4_narrow", 4, 16, 4, (-8, 7), (-3, 12), 500),
    ("P8_N8_T2_wide", 8, 8, 2, (-32768, 32767), (-2048, 2047), 1000),
    ("P3_N5_T1_asym", 3, 5, 1, (0, 255), (-1000, 0), 2000),
]


def add_case(P, N, T, abounds, bbounds, windows, seed):
    rng = np.random.default_rng(seed)
    a = current_windows(rng, windows, (T, N), *abounds).reshape(windows * T, N)
    b = current_windows(rng, windows, (T, N), *bbounds).reshape(windows * T, N)[::-1].copy()
    unit = ResidualAdd(lanes=P, a_bounds=abounds, b_bounds=bbounds)
    meta = {"lanes": P, "a_width": unit.a_width, "b_width": unit.b_width, "width": unit.width,
            "model_cycles": unit.cycles(windows * T * -(-N // P)), "phase2_items": max(1, len(a) // 8),
            **BACKPRESSURE}
    return unit, {"a": a, "b": b, "expected": add_reference(a, b)}, meta


def seed_of(label: str) -> int:
    """A stable seed from a parameter-set label."""
    return sum((i + 1) * ord(c) for i, c in enumerate(label)) % 2**31
