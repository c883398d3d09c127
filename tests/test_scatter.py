"""The scatter engine (hw/scatter.py), after the bias pass (hw/bias.py) and, for TDEC, the
cumulative counts of ``b`` (hw/cumulate.py) as the sequencer runs them, against its golden slice,
``golden.synaptic_frames`` (the bias at frame 1 only; the encoding layer's whole current at
frame 1) and ``golden.tdec_layer``, frame by frame over the window of real ops of the shipped
artifacts, on the product's memories (sim/benchlib/phase_rig.py): ACC after each frame bit-exact
(the head's ACC: the running sum, ``golden.logits`` at the end), cycles equal to
``bias.cycles (+ cumulate.cycles) + scatter.cycles``; a flipped bit of one of the scatter's ACC writes must fail.
The scatter's word queue (``WordSkid``) is also checked on its own, against a list."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from csdformer.hw import bias, cumulate, scatter
from csdformer.hw.netmodel import scatter_events
from csdformer.hw.program import Sink, Src
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, acc_tensor, case, compare, op_named
from csdformer.sim.runner import synaptic_args, tdec_args

CASES = [  # artifact, lanes, op
    ("digits", 8, "stages.1.quant"),  # the encoding conv: pixel bit-planes
    ("digits", 8, "blocks.0.attn.quant_q"),  # linear
    ("digits", 8, "blocks.0.attn.quant_attn"),  # TDEC q·kᵀ (the transposed copy of k)
    ("digits", 8, "head"),  # head: ACC sums every frame
    ("digits", 1, "blocks.0.attn.quant_in"),  # conv over tokens (the RPE conv, its residual add and DIF in one op)
    ("digits", 8, "stages.2.quant"),  # conv of spikes, two lane words a tap: its border taps skipped
    ("digits", 1, "blocks.0.attn.quant_out"),  # TDEC attn·v
    ("fashion_mnist", 16, "blocks.0.attn.quant_k"),
]


def _golden(c, op):
    """The op's input spike tensors with their frames, and its current (T, *shape) in ACC's units."""
    layer, fr, T = c.artifact.layer(op.layers[0]), c.frames, c.program.T
    if op.src is Src.TDEC:
        a, b = (op.refs[k] for k in ("src_base", "b_spk"))
        bv = golden.transpose(fr[b[:-2]]) if b.endswith(".T") else fr[b]
        cur = golden.tdec_layer(fr[layer.inputs[0]], fr[layer.inputs[1]], **tdec_args(layer))
        return {a: fr[a], b: bv}, cur >> layer.attrs["shift"]
    args, kw = synaptic_args(layer)
    x = c.image if op.src is Src.IMG else fr[layer.inputs[0]]
    ins = {} if op.src is Src.IMG else {op.refs["src_base"]: fr[op.refs["src_base"]]}
    return ins, golden.synaptic_frames(*args, x, T, **kw)


def run_scatter(name, lanes, op_name, flip=None):
    c = case(name, lanes)
    program = c.program
    op = op_named(program, op_name)
    inputs, current = _golden(c, op)
    acc_t, want = acc_tensor(program, op), current
    if op.sink is Sink.LOGITS:
        want = np.cumsum(current, axis=0)  # ACC keeps summing: after the last frame, the logits
        assert np.array_equal(want[-1], golden.logits(current))
    frames = 1 if op.src is Src.IMG else program.T
    bias_pass, cum = bias.Bias(program), cumulate.Cumulate(program)
    rig = PhaseRig(program, scatter.Scatter(program), helpers=[bias_pass, cum], flip=flip)
    measured, got = [], []

    async def bench(ctx):
        for tname, values in inputs.items():
            t = program.tensors[tname]
            rig.load_tensor(ctx, "spk", t.base, t, values)
        if op.src is Src.IMG:
            rig.load(ctx, "img", 0, c.image.transpose(1, 2, 0).reshape(-1).tolist())  # (y, x, c) order
        measured.append(await rig.start(ctx, op, 1, c.delay, unit=bias_pass))
        for t in range(1, frames + 1):
            if op.src is Src.TDEC:  # Bcum(t) = Bcum(t−1) + b(t) first
                measured.append(await rig.start(ctx, op, t, c.delay, unit=cum))
            measured.append(await rig.start(ctx, op, t, c.delay))
            await rig.drain(ctx)
            got.append(rig.read_tensor(ctx, "acc", 0, acc_t)[0])
            if op.sink is not Sink.LOGITS:  # the sink's clear behind it
                rig.load(ctx, "acc", 0, [0] * acc_t.words)

    rig.run(bench)
    for t in range(frames):
        compare(f"{name}@{lanes} {op.name} frame {t + 1} (ACC)", got[t], want[t], acc_t)
    events, fanout, live_words, _, chained = scatter_events(program, op, c.frames, c.image, program.T)
    model = bias.cycles(op, program) + scatter.cycles(op, program, fanout=fanout, live_words=live_words,
                                                      chained=chained)
    model += cumulate.cycles(op, program) if op.src is Src.TDEC else 0
    assert events > 0 and sum(measured) == model


@pytest.mark.parametrize("case_", CASES, ids=[f"{c[0]}@{c[1]}-{c[2]}" for c in CASES])
def test_scatter_matches_golden(case_):
    run_scatter(*case_)


# A flipped ACC write is only visible if no later event on that word takes the forwarded sum
# instead of reading it back (events one and two stages apart are forwarded), and a bit flipped on
# every read of a word can cancel out over two reads: each case names a corruption that lands.
CORRUPT = [(CASES[1], Flip("acc", n=1, bit=0)), (CASES[2], Flip("acc_w", n=20, bit=1)),
           (CASES[0], Flip("acc", n=1, bit=0))]


@pytest.mark.parametrize("case_, flip", CORRUPT, ids=["linear", "tdec", "encode"])
def test_scatter_corrupted_rtl_fails(case_, flip):
    with pytest.raises(AssertionError, match=rf"{case_[2]} frame \d+ \(ACC\): \d+ of \d+ differ; first at .*\(word \d+"):
        run_scatter(*case_, flip=flip)


def test_word_queue_gives_words_in_order():
    """The scatter's word queue (WordSkid) on its own: words that arrive while the engine takes
    none (a fan-out) come out first in first out, one a cycle when taken, with ``have`` exactly
    when one is held; a word arriving while the queue is empty is the head the next cycle; a
    flush forgets everything. Random arrivals and takes, within the engine's contract (it takes
    only when ``have``; at most ``depth`` words held), against a Python list."""
    layout = data.StructLayout({"mask": 8, "low": 3})
    depth = scatter.SKID
    q = scatter.WordSkid(layout, depth)
    rng = random.Random(7)
    checked = []

    async def bench(ctx):
        held, n = [], 0
        for cycle in range(3000):
            assert ctx.get(q.have) == bool(held)
            if held:
                head = ctx.get(q.head)
                assert (head.mask, head.low) == held[0]
            take = bool(held) and rng.random() < 0.6
            arrive = len(held) - take < depth and rng.random() < 0.7
            flush = rng.random() < 0.01
            word = ((n * 37) & 0xFF, n % 8)
            ctx.set(q.take, take)
            ctx.set(q.arrive, arrive)
            ctx.set(q.flush, flush)
            ctx.set(q.word, {"mask": word[0], "low": word[1]})
            await ctx.tick()
            if take:
                checked.append(held.pop(0))
            if arrive:
                held.append(word)
                n += 1
            if flush:
                held = []

    sim = Simulator(q)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) > 1000

