"""Quick Amaranth-simulator tests of the TDEC max-pool unit against golden.tdec_maxpool."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from csdformer.hw import HwParamError
from csdformer.hw.tdec_maxpool import TDECMaxPool, reference
from csdformer.sim.benchlib import pack_lanes, unpack_lanes
from csdformer.sim.benchlib.amaranth_sim import run_streams


def _run(unit: TDECMaxPool, spikes, *, stall_every=0):
    """Stream ``spikes (windows, T, C, H, W)``; return ``(windows, T, C, H', W')`` and cycles."""
    Wn, T, C, H, W = spikes.shape
    P, G = unit.lanes, unit.groups
    _, Ho, Wo = unit.out_shape
    pad = np.zeros((Wn, T, G * P, H, W), dtype=np.uint8)
    pad[:, :, :C] = spikes
    beats = pad.reshape(Wn, T, G, P, H, W).transpose(0, 1, 4, 5, 2, 3).reshape(-1, P)
    words = [pack_lanes(b, 1) for b in beats]
    out, cycles = run_streams(unit, {"i_stream": words}, Wn * T * Ho * Wo * G, stall_every=stall_every)
    bits = np.array([unpack_lanes(w, 1, P) for w in out], dtype=np.uint8)
    got = bits.reshape(Wn, T, Ho, Wo, G * P).transpose(0, 1, 4, 2, 3)[:, :, :C]
    return got, cycles


@pytest.mark.parametrize("C,H,W,P,T,k,s,p", [
    (3, 4, 4, 2, 4, 2, 2, 0),
    (2, 5, 5, 4, 3, 3, 2, 1),
    (5, 3, 4, 1, 2, 1, 1, 0),
    (1, 2, 2, 1, 1, 2, 2, 0),
])
def test_tdec_maxpool_matches_golden(C, H, W, P, T, k, s, p):
    rng = np.random.default_rng(C * 7 + H + T)
    spikes = (rng.random((2, T, C, H, W)) < 0.4).astype(np.uint8)
    unit = TDECMaxPool(channels=C, height=H, width=W, lanes=P, T=T, kernel=k, stride=s, padding=p)
    got, measured = _run(unit, spikes)
    assert np.array_equal(got, reference(spikes, k, s, p))
    assert measured == unit.cycles(2 * T)
    unit = TDECMaxPool(channels=C, height=H, width=W, lanes=P, T=T, kernel=k, stride=s, padding=p)
    got, _ = _run(unit, spikes, stall_every=3)
    assert np.array_equal(got, reference(spikes, k, s, p))


@pytest.mark.parametrize("kw,match", [
    (dict(lanes=0), "lanes"),
    (dict(T=0), "T"),
    (dict(kernel=0), "kernel"),
    (dict(kernel=3, padding=2), "padding"),
    (dict(kernel=5), "kernel"),
])
def test_tdec_maxpool_bad_parameters(kw, match):
    args = dict(channels=4, height=4, width=4, lanes=2, T=4, kernel=2)
    args.update(kw)
    with pytest.raises(HwParamError, match=match):
        TDECMaxPool(**args)


def test_tdec_maxpool_properties():
    unit = TDECMaxPool(channels=10, height=8, width=8, lanes=4, T=4, kernel=2)
    assert unit.groups == 3 and unit.out_shape == (10, 4, 4) and unit.count_width == 3
    assert unit.latency == 9
    Fragment.get(unit, None)
