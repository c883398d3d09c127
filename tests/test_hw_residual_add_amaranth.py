"""Quick Amaranth-simulator tests of the residual adder against the golden add."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from csdformer.hw import HwParamError
from csdformer.hw.residual_add import ResidualAdd, reference
from csdformer.sim.benchlib import pack_lanes, unpack_lanes
from csdformer.sim.benchlib.amaranth_sim import run_streams


def _run(unit: ResidualAdd, a, b, *, stall_every=0):
    P = unit.lanes
    wa = [pack_lanes(r, unit.a_width) for r in a.reshape(-1, P)]
    wb = [pack_lanes(r, unit.b_width) for r in b.reshape(-1, P)]
    out, cycles = run_streams(unit, {"a_stream": wa, "b_stream": wb}, len(wa),
                              idle_every=3 if stall_every else 0, stall_every=stall_every)
    got = np.array([unpack_lanes(w, unit.width, P, signed=True) for w in out]).reshape(a.shape)
    return got, cycles


@pytest.mark.parametrize("P,abounds,bbounds", [(4, (-8, 7), (-100, 3)), (1, (0, 255), (0, 255)), (3, (-5, 0), (-5, 0))])
@pytest.mark.parametrize("stall", [0, 3])
def test_residual_add_matches_golden(P, abounds, bbounds, stall):
    rng = np.random.default_rng(P)
    a = rng.integers(abounds[0], abounds[1] + 1, (10, P * 2))
    b = rng.integers(bbounds[0], bbounds[1] + 1, (10, P * 2))
    a[0], b[0] = abounds[0], bbounds[0]
    a[1], b[1] = abounds[1], bbounds[1]
    unit = ResidualAdd(lanes=P, a_bounds=abounds, b_bounds=bbounds)
    got, measured = _run(unit, a, b, stall_every=stall)
    assert np.array_equal(got, reference(a, b))
    if not stall:
        assert measured == unit.cycles(a.size // P)


def test_residual_add_widths():
    unit = ResidualAdd(lanes=2, a_bounds=(-128, 127), b_bounds=(-128, 127))
    assert (unit.a_width, unit.b_width, unit.width, unit.latency) == (8, 8, 9, 1)
    Fragment.get(unit, None)


@pytest.mark.parametrize("kw,match", [
    (dict(lanes=0), "lanes"),
    (dict(width=8), "width"),
    (dict(a_width=7), "a_width"),
    (dict(a_bounds=(3, -3)), "bounds"),
])
def test_residual_add_bad_parameters(kw, match):
    args = dict(lanes=2, a_bounds=(-128, 127), b_bounds=(-128, 127))
    args.update(kw)
    with pytest.raises(HwParamError, match=match):
        ResidualAdd(**args)
