"""The bias pass (hw/bias.py) against its golden slice, ``golden.synaptic_frames`` at frame 1 of
an empty input (the bias, which enters at frame 1 only), for real synaptic ops of the shipped
artifacts, on the product's memories (sim/benchlib/phase_rig.py): ACC bit-exact, cycles equal to
``bias.cycles``; a flipped bit of one ACC write must fail."""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw import bias
from csdformer.hw.program import Src
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, acc_tensor, case, compare, op_named
from csdformer.sim.runner import synaptic_args

# (the RPE conv's op: with its residual add and the DIF after it, Program.store_dif)
CASES = [("digits", 8, "stages.1.quant"), ("digits", 8, "head"), ("digits", 1, "blocks.0.attn.quant_in"),
         ("fashion_mnist", 16, "blocks.0.mlp.quant2")]


def run_bias(name, lanes, op_name, flip=None):
    c = case(name, lanes)
    program = c.program
    op = op_named(program, op_name)
    layer = c.artifact.layer(op.layers[0])
    empty = np.zeros_like(c.image if op.src is Src.IMG else c.frames[layer.inputs[0]])
    args, kw = synaptic_args(layer)
    want = golden.synaptic_frames(*args, empty, program.T, **kw)[0]
    acc_t, got = acc_tensor(program, op), {}
    rig = PhaseRig(program, bias.Bias(program), flip=flip)

    async def bench(ctx):
        got["cycles"] = await rig.start(ctx, op, 1, c.delay)
        await rig.drain(ctx)
        got["acc"] = rig.read_tensor(ctx, "acc", 0, acc_t)[0]

    rig.run(bench)
    compare(f"{name}@{lanes} {op.name} (ACC)", got["acc"], want, acc_t)
    assert got["cycles"] == bias.cycles(op, program)


@pytest.mark.parametrize("case_", CASES, ids=[f"{c[0]}@{c[1]}-{c[2]}" for c in CASES])
def test_bias_matches_golden(case_):
    run_bias(*case_)


def test_bias_corrupted_rtl_fails():
    with pytest.raises(AssertionError, match=r"quant_in \(ACC\): 1 of \d+ differ; first at .*\(word 7 of the frame, lane 0"):
        run_bias("digits", 1, "blocks.0.attn.quant_in", flip=Flip("acc_w", n=7, bit=0))
