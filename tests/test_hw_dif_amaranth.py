"""Quick Amaranth-simulator tests of the DIF neuron array against golden.dif."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from csdformer.hw import HwParamError
from csdformer.hw.dif import DIF, cycles, reference
from csdformer.sim.benchlib import pack_lanes, unpack_lanes
from csdformer.sim.benchlib.amaranth_sim import run_streams


def _run(unit: DIF, currents, *, stall_every=0):
    """Stream ``currents (windows, T, N)`` through ``unit``; return spikes ``(windows, T, N)``."""
    W, T, N = currents.shape
    P, G = unit.lanes, unit.groups
    pad = np.zeros((W, T, G * P), dtype=np.int64)
    pad[..., :N] = currents
    words = [pack_lanes(pad[w, t, g * P:(g + 1) * P], unit.in_width)
             for w in range(W) for t in range(T) for g in range(G)]
    out, _ = run_streams(unit, {"i_stream": words}, len(words), stall_every=stall_every)
    bits = np.array([unpack_lanes(w, 1, P) for w in out]).reshape(W, T, G * P)
    return bits[..., :N]


@pytest.mark.parametrize("N,P,T,D", [(5, 2, 4, 0), (4, 4, 4, 3), (6, 1, 3, 1), (3, 4, 1, 0)])
def test_dif_matches_golden(N, P, T, D):
    rng = np.random.default_rng(N * 100 + P * 10 + T + D)
    theta = rng.integers(1, 9, N)
    v0 = rng.integers(-3, 6, N)
    cur = rng.integers(-8, 12, (3, T, N))
    unit = DIF(neurons=N, lanes=P, T=T, D=D, threshold=theta, v0=v0, current_bounds=(-8, 11))
    got = _run(unit, cur, stall_every=3)
    assert np.array_equal(got, reference(cur, theta, D, v0))


def test_dif_default_v0_and_threshold_one():
    cur = np.array([[[1, 0, -1], [1, 1, 1]]])
    unit = DIF(neurons=3, lanes=3, T=2, D=1, threshold=1, current_bounds=(-1, 1))
    assert np.array_equal(_run(unit, cur), reference(cur, 1, 1))


def test_dif_properties_and_cycles():
    unit = DIF(neurons=10, lanes=4, T=4, D=2, threshold=5, current_bounds=(-100, 100))
    assert unit.groups == 3 and unit.latency == 1
    assert unit.potential_bounds == (-400, 402)
    assert unit.potential_width == 10
    assert unit.cycles(2) == cycles(3, 4, 2, 2) == 2 * 6 * 3 + 1
    Fragment.get(unit, None)  # elaborates (and marks the unit used)


@pytest.mark.parametrize("kw,match", [
    (dict(lanes=0), "lanes"),
    (dict(neurons=0), "neurons"),
    (dict(T=0), "T"),
    (dict(D=4), "D"),
    (dict(D=-1), "D"),
    (dict(threshold=0), "threshold"),
    (dict(potential_width=9), "potential_width"),
    (dict(in_width=7), "in_width"),
    (dict(current_bounds=(5, -5)), "current_bounds"),
])
def test_dif_bad_parameters(kw, match):
    args = dict(neurons=10, lanes=4, T=4, D=2, threshold=5, current_bounds=(-100, 100))
    args.update(kw)
    with pytest.raises(HwParamError, match=match):
        DIF(**args)
