"""The sink (hw/sink.py) against its golden slice, ``golden.dif`` (DIF neurons) and ``golden.add``
(the store of a residual add), over all the steps of real ops of the shipped artifacts, on the
product's memories (sim/benchlib/phase_rig.py): spikes / stored currents bit-exact, ACC cleared
behind it, cycles equal to ``sink.cycles``; a flipped bit of one write must fail."""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw import sink
from csdformer.hw.program import Sink, compile_program
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, case, compare, op_named, steps

CASES = [  # artifact, lanes, single-port memories, op
    ("digits", 8, (), "blocks.0.attn.quant_attn"),  # fused TDEC current (ACC << shift), per-element θ
    ("digits", 8, (), "rpe_add"),  # store: ACC + a stored current
    ("digits", 1, ("cur", "mem"), "rpe_quant"),  # DIF of a stored current, half-rate single-port sink
    ("digits", 1, ("cur", "mem"), "blocks.0.attn_add"),
    ("fashion_mnist", 16, (), "head_quant"),
]


def run_sink(name, lanes, single_port, op_name, flip=None):
    c = case(name, lanes, single_port)
    program, fr, D = c.program, c.frames, c.delay
    op = op_named(program, op_name)
    f, last = op.f, c.artifact.layer(op.layers[-1])
    out_t = program.tensors[op.name]
    if op.sink is Sink.DIF:
        current = fr[last.inputs[0]]
        want = golden.dif(current, last.arrays["threshold"], D, last.arrays["v0"])
        assert 0 < want.sum() < want.size  # some spikes, not all
        acc_part = current
    else:
        want = golden.add(*(fr[s] for s in last.inputs)) if last.kind == "add" else fr[last.name]
        acc_part = fr[op.layers[0]]
    acc = acc_part >> f["shift"]
    assert np.array_equal(acc << f["shift"], acc_part)
    rig = PhaseRig(program, sink.SinkArray(program), flip=flip)
    measured, cleared = [], []

    async def bench(ctx):
        if f["use_cur"]:
            src = program.tensors[op.refs["cur_base"]]
            rig.load_tensor(ctx, "cur", src.base, src, fr[src.name])
        for t in range(1, steps(program, op, D) + 1):
            if f["use_acc"] and t <= program.T:
                rig.load_tensor(ctx, "acc", 0, out_t, acc[t - 1][None])
            measured.append(await rig.start(ctx, op, t, D))
            cleared.append(not any(rig.dump(ctx, "acc", 0, f["sink_words"])) if f["use_acc"] else True)
        await rig.drain(ctx)
        mem, signed = ("spk", False) if op.sink is Sink.DIF else ("cur", True)
        got.append(rig.read_tensor(ctx, mem, out_t.base, out_t, program.T, signed=signed))

    got = []
    rig.run(bench)
    compare(f"{name}@{lanes} {op.name}", got[0], want, out_t)
    assert all(cleared), "ACC not cleared behind the sink"
    assert sum(measured) == sink.cycles(op, program, steps(program, op, D))


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}@{c[1]}-{c[3]}" for c in CASES])
def test_sink_matches_golden(case):
    run_sink(*case)


@pytest.mark.parametrize("case,port", [(CASES[0], "spk_w"), (CASES[3], "cur_w")], ids=["dif", "store"])
def test_sink_corrupted_rtl_fails(case, port):
    with pytest.raises(AssertionError, match=rf"{case[3]}: 1 of \d+ differ; first at .* \(word \d+ of the frame"):
        run_sink(*case, flip=Flip(port, n=5, bit=0))
