"""The block transposer (hw/transpose.py) against its golden slice, ``golden.transpose`` of every
frame (the ``k`` of ``q·kᵀ``), over the T steps of the shipped artifacts' transpose ops, on the
product's memories (sim/benchlib/phase_rig.py): the copy's words bit-exact (padding lanes zero),
cycles equal to ``transpose.cycles``; a flipped bit of one written word must fail."""

from __future__ import annotations

import pytest

from csdformer.hw import transpose
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, case, compare, op_named

CASES = [("digits", 8, "blocks.0.attn.quant_k.T"), ("digits", 1, "blocks.0.attn.quant_k.T"),
         ("fashion_mnist", 16, "blocks.1.attn.quant_k.T")]


def run_transpose(name, lanes, op_name, flip=None):
    c = case(name, lanes)
    program = c.program
    op = op_named(program, op_name)
    src, out = program.tensors[op.refs["src_base"]], program.tensors[op.name]
    x = c.frames[src.name]
    want = out.to_words(golden.transpose(x))  # (T, channels, tokens padded to whole words)
    rig = PhaseRig(program, transpose.Transpose(program), flip=flip)
    measured, got = [], []

    async def bench(ctx):
        rig.load_tensor(ctx, "spk", src.base, src, x)
        measured.extend(await rig.window(ctx, op, c.delay))
        got.append(rig.read_tensor(ctx, "spk", out.base, out, program.T, signed=False, raw=True))

    rig.run(bench)
    compare(f"{name}@{lanes} {op.name} (frame, channel, token)", got[0], want)
    assert sum(measured) == transpose.cycles(op, program)


FLIPS = [Flip("spk_w", n=2, bit=0), Flip("spk_w", n=9, bit=0)]  # one written word of the copy


@pytest.mark.parametrize("case_,flip", [(c, None) for c in CASES] + list(zip(CASES, FLIPS)),
                         ids=[f"{c[0]}@{c[1]}" for c in CASES] + [f"{c[0]}@{c[1]}-corrupted" for c in CASES[:2]])
def test_transpose_matches_golden_and_corrupted_rtl_fails(case_, flip):
    if flip is None:
        return run_transpose(*case_)
    with pytest.raises(AssertionError, match=rf"{case_[2]} \(frame, channel, token\): 1 of \d+ differ"):
        run_transpose(*case_, flip=flip)
