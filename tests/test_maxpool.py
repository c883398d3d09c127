"""The TDEC max-pool (hw/maxpool.py) against its golden slice, ``golden.tdec_maxpool``, over the T
steps of the shipped artifacts' max-pool ops, on the product's memories
(sim/benchlib/phase_rig.py): output spikes bit-exact, cycles equal to ``maxpool.cycles``; a flipped
bit of one spike write must fail. Where it counts its input itself (``Program.pool_counts``: not
compact) the input's cumulative counts in CNT after each step are ``golden.cumulate``'s, and a
flipped bit of one count write fails too; compact (the iCEBreaker's single-port CUR and MEM) it
runs each step after the cumulative counts of its input (hw/cumulate.py), as the sequencer does,
and the cycles are ``cumulate.cycles + maxpool.cycles``."""

from __future__ import annotations

import pytest

from csdformer.hw import cumulate, maxpool
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, case, compare, op_named

COMPACT = ("cur", "mem")
CASES = [("digits", 8, (), "stages.2.pool"), ("digits", 1, (), "stages.2.pool"),
         ("fashion_mnist", 16, (), "stages.2.pool"), ("digits", 8, COMPACT, "stages.2.pool"),
         ("digits", 1, COMPACT, "stages.2.pool")]


def run_maxpool(name, lanes, single_port, op_name, flip=None):
    c = case(name, lanes, single_port)
    program = c.program
    op = op_named(program, op_name)
    layer = c.artifact.layer(op.name)
    src, out = program.tensors[op.refs["src_base"]], program.tensors[op.name]
    x = c.frames[src.name]
    want = golden.tdec_maxpool(x, layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["padding"])
    assert 0 < want.sum() < want.size
    assert program.pool_counts == (not single_port)
    helpers = [] if program.pool_counts else [cumulate.Cumulate(program)]
    rig = PhaseRig(program, maxpool.MaxPool(program), helpers=helpers, flip=flip)
    measured, got, counts = [], [], []

    async def bench(ctx):
        rig.load_tensor(ctx, "spk", src.base, src, x)
        measured.extend(await rig.window(ctx, op, c.delay, units=(*helpers, None), after=lambda ctx, t: counts.append(
            rig.read_tensor(ctx, "cnt", op.f["cum"], src, signed=False, raw=True)[0])))
        got.append(rig.read_tensor(ctx, "spk", out.base, out, program.T, signed=False))

    rig.run(bench)
    compare(f"{name}@{lanes} {op.name}", got[0], want, out)
    if program.pool_counts:  # C(t), in place in the input's layout
        for t, cnt in enumerate(src.to_words(golden.cumulate(x))):
            compare(f"{name}@{lanes} {op.name} C({t + 1}) (row, lane)", counts[t], cnt)
    assert sum(measured) == maxpool.cycles(op, program) + (0 if program.pool_counts else cumulate.cycles(op, program))


IDS = [f"{c[0]}@{c[1]}{'-compact' if c[2] else ''}-{c[3]}" for c in CASES]


@pytest.mark.parametrize("case_", CASES, ids=IDS)
def test_maxpool_matches_golden(case_):
    run_maxpool(*case_)


@pytest.mark.parametrize("case_", [CASES[0], CASES[1], CASES[4]], ids=["lanes8", "lanes1", "lanes1-compact"])
def test_maxpool_corrupted_rtl_fails(case_):
    with pytest.raises(AssertionError, match=rf"{case_[3]}: 1 of \d+ differ; first at .*\(word \d+"):
        run_maxpool(*case_, flip=Flip("spk_w", n=3, bit=0))


def test_maxpool_corrupted_count_fails():
    with pytest.raises(AssertionError, match=r"stages.2.pool C\(1\) \(row, lane\): 1 of \d+ differ"):
        run_maxpool("digits", 8, (), "stages.2.pool", flip=Flip("cnt_w", n=3, bit=0))
