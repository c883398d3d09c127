"""The cumulative counts (hw/cumulate.py) against their golden slice, ``golden.cumulate``, step by
step over the window, for the ``b`` operand of real TDEC ops and the input of max-pool ops of the
shipped artifacts, on the product's memories (sim/benchlib/phase_rig.py): CNT after each step
bit-exact, cycles equal to ``cumulate.cycles``; a flipped bit of one CNT write must fail."""

from __future__ import annotations

import pytest

from csdformer.hw import cumulate
from csdformer.hw.program import Src
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, case, compare, op_named

# (the max-pool's input: compact only, Program.pool_counts; elsewhere the max-pool counts it itself)
CASES = [("digits", 8, "stages.2.pool", ("cur", "mem")), ("digits", 8, "blocks.0.attn.quant_attn"),
         ("digits", 1, "blocks.0.attn.quant_out"), ("fashion_mnist", 16, "blocks.1.attn.quant_attn")]


def run_cumulate(name, lanes, op_name, single_port=(), flip=None):
    c = case(name, lanes, single_port)
    program = c.program
    op = op_named(program, op_name)
    t_in = program.tensors[op.refs["b_spk" if op.src is Src.TDEC else "src_base"]]
    x = golden.transpose(c.frames[t_in.transposed_of]) if t_in.transposed_of else c.frames[t_in.name]
    want = t_in.to_words(golden.cumulate(x))  # CNT holds C(t) in the input's layout
    base = program.fields(op)["cumulate"]["base"]
    rig = PhaseRig(program, cumulate.Cumulate(program), flip=flip)
    cycles, got = [], []

    async def bench(ctx):
        rig.load_tensor(ctx, "spk", t_in.base, t_in, x)
        cycles.extend(await rig.window(ctx, op, c.delay, after=lambda ctx, t: got.append(
            rig.read_tensor(ctx, "cnt", base, t_in, signed=False, raw=True)[0])))

    rig.run(bench)
    for t in range(program.T):
        compare(f"{name}@{lanes} {op.name} C({t + 1}) (row, lane)", got[t], want[t])
    assert sum(cycles) == cumulate.cycles(op, program)


def test_cumulate_corrupted_rtl_fails():
    with pytest.raises(AssertionError, match=r"quant_attn C\(1\) \(row, lane\): 1 of \d+ differ"):
        run_cumulate("digits", 8, "blocks.0.attn.quant_attn", flip=Flip("cnt_w", n=3, bit=1))


@pytest.mark.parametrize("case_", CASES, ids=[f"{c[0]}@{c[1]}-{c[2]}" for c in CASES])
def test_cumulate_matches_golden(case_):
    run_cumulate(*case_)
