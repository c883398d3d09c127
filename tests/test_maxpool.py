"""The TDEC max-pool (hw/maxpool.py), each step after the cumulative counts of its input
(hw/cumulate.py) as the sequencer runs them, against its golden slice, ``golden.tdec_maxpool``,
over the T steps of the shipped artifacts' max-pool ops, on the product's memories
(sim/benchlib/phase_rig.py): output spikes bit-exact, cycles equal to ``cumulate.cycles +
maxpool.cycles``; a flipped bit of one spike write must fail."""

from __future__ import annotations

import pytest

from csdformer.hw import cumulate, maxpool
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, case, compare, op_named

CASES = [("digits", 8, "stages.2.pool"), ("digits", 1, "stages.2.pool"), ("fashion_mnist", 16, "stages.2.pool")]


def run_maxpool(name, lanes, op_name, flip=None):
    c = case(name, lanes)
    program = c.program
    op = op_named(program, op_name)
    layer = c.artifact.layer(op.name)
    src, out = program.tensors[op.refs["src_base"]], program.tensors[op.name]
    x = c.frames[src.name]
    want = golden.tdec_maxpool(x, layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["padding"])
    assert 0 < want.sum() < want.size
    cum = cumulate.Cumulate(program)
    rig = PhaseRig(program, maxpool.MaxPool(program), helpers=[cum], flip=flip)
    measured, got = [], []

    async def bench(ctx):
        rig.load_tensor(ctx, "spk", src.base, src, x)
        measured.extend(await rig.window(ctx, op, c.delay, units=(cum, None)))  # C(t) = C(t−1) + in(t) first
        got.append(rig.read_tensor(ctx, "spk", out.base, out, program.T, signed=False))

    rig.run(bench)
    compare(f"{name}@{lanes} {op.name}", got[0], want, out)
    assert sum(measured) == cumulate.cycles(op, program) + maxpool.cycles(op, program)


@pytest.mark.parametrize("case_", CASES, ids=[f"{c[0]}@{c[1]}-{c[2]}" for c in CASES])
def test_maxpool_matches_golden(case_):
    run_maxpool(*case_)


@pytest.mark.parametrize("case_", CASES[:2], ids=["lanes8", "lanes1"])
def test_maxpool_corrupted_rtl_fails(case_):
    with pytest.raises(AssertionError, match=rf"{case_[2]}: 1 of \d+ differ; first at .*\(word \d+"):
        run_maxpool(*case_, flip=Flip("spk_w", n=3, bit=0))
