"""The sink (hw/sink.py) against its golden slice, ``golden.dif`` (DIF neurons) and ``golden.add``
(the store of a residual add; a DIF op fused with a store: both), over all the steps of real ops of
the shipped artifacts, on the
product's memories (sim/benchlib/phase_rig.py): spikes / stored currents bit-exact, ACC cleared
behind it, cycles equal to ``sink.cycles``; a flipped bit of one write must fail. The stage before
``ACC << shift`` (``sink.acc_stage``: on at full rate, off in the half-rate sink) is timing only:
each kind of sink is exact the other way too, its cycles ``sink.cycles`` of that way."""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw import sink
from csdformer.hw.program import Sink, Src, compile_program
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, case, compare, pack, steps, tile_words

CASES = [  # artifact, lanes, single-port memories, op, weight buffer words (None: no output tiles)
    ("digits", 8, (), "blocks.0.attn.quant_attn", None),  # fused TDEC current (ACC << shift), per-element θ
    # DIF fused with the store of a residual add (ACC + a stored current, stored and integrated)
    ("digits", 8, (), "blocks.0.attn.quant_in", None),
    ("digits", 8, (), "rpe_quant", None),  # DIF fused with the store of a conv's current (no stored input)
    ("digits", 1, ("cur", "mem"), "rpe_quant", None),  # DIF of a stored current, half-rate single-port sink
    ("digits", 1, ("cur", "mem"), "blocks.0.attn_add", None),  # store: ACC + a stored current
    ("fashion_mnist", 16, (), "head_quant", None),
    # Output tiles (weight blocks larger than the buffer): each tile's compact current, its groups'
    # thresholds, its words of the output (and stored input) tensor; the tiles in turn make the layer.
    ("digits", 4, (), "blocks.0.mlp.quant2", 300),  # DIF, 2 tiles of 2 of 4 lane groups
    ("digits", 8, ("cur", "mem"), "rpe_add", 300),  # store with a stored current, 4 tiles of 1 of 4
    ("digits", 4, (), "head_quant", 300),  # DIF fused with a residual add's store, 2 tiles of 4 of 8
]


def run_sink(name, lanes, single_port, op_name, weight_depth, flip=None):
    c = case(name, lanes, single_port, weight_depth=weight_depth)
    program, fr, D = c.program, c.frames, c.delay
    ops = [o for o in program.ops if o.name == op_name]  # the layer's op, or its tiles in order
    assert (len(ops) > 1) == (weight_depth is not None)  # the tiled cases are tiled
    op = ops[0]
    f, last = op.f, c.artifact.layer(op.layers[-1])
    out_t = program.tensors[op.name]
    add = next((a for a in map(c.artifact.layer, op.layers) if a.kind == "add"), None)
    stored = program.tensors[op.refs["sto_base"]] if op.sink is Sink.DIF and "sto_base" in op.refs else None
    if op.sink is Sink.DIF:
        current = fr[last.inputs[0]]
        want = golden.dif(current, last.arrays["threshold"], D, last.arrays["v0"])
        assert 0 < want.sum() < want.size  # some spikes, not all
        acc_part = fr[op.layers[0]] if add is not None else current  # a residual add: its synaptic part
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
        for o in ops:
            words = tile_words(program, o, out_t.to_words(acc))  # (T, rows, the op's lanes): ACC compact
            for t in range(1, steps(program, o, D) + 1):
                if f["use_acc"] and t <= program.T:
                    rig.load(ctx, "acc", 0, pack(words[t - 1].reshape(-1, program.lanes), rig.width("acc")))
                measured.append(await rig.start(ctx, o, t, D))
                cleared.append(not any(rig.dump(ctx, "acc", 0, o.f["sink_words"])) if f["use_acc"] else True)
        await rig.drain(ctx)
        mem, signed = ("spk", False) if op.sink is Sink.DIF else ("cur", True)
        got.append(rig.read_tensor(ctx, mem, out_t.base, out_t, program.T, signed=signed))
        if stored is not None:
            got.append(rig.read_tensor(ctx, "cur", stored.base, stored, program.T, signed=True))

    got = []
    rig.run(bench)
    compare(f"{name}@{lanes} {op.name}", got[0], want, out_t)
    if stored is not None:  # the fused store: the add's sum (or the conv's current) in CUR
        compare(f"{name}@{lanes} {op.name} (stored)", got[1],
                golden.add(*(fr[s] for s in add.inputs)) if add is not None else fr[stored.name], stored)
    assert all(cleared), "ACC not cleared behind the sink"
    assert sum(measured) == sum(sink.cycles(o, program, steps(program, o, D)) for o in ops)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}@{c[1]}-{c[3]}" + (f"-tiles{c[4]}" if c[4] else "")
                                            for c in CASES])
def test_sink_matches_golden(case):
    run_sink(*case)


@pytest.mark.parametrize("case,port", [(CASES[0], "spk_w"), (CASES[4], "cur_w"), (CASES[1], "cur_w")],
                         ids=["dif", "store", "fused-store"])
def test_sink_corrupted_rtl_fails(case, port):
    with pytest.raises(AssertionError, match=rf"{case[3]}( \(stored\))?: 1 of \d+ differ; first at .* \(word \d+ of the frame"):
        run_sink(*case, flip=Flip(port, n=5, bit=0))


def test_the_acc_stage_is_on_at_full_rate_only():
    """On for the ECP5 boards (dual-port memories, full rate), off for the iCEBreaker (single-port
    CUR: the half-rate sink); the pipeline one stage deeper and a step one cycle longer with it."""
    from csdformer.boards.targets import BOARDS

    art = case("digits", 1).artifact
    on = {name: sink.acc_stage(compile_program(art, 1, single_port=b.single_port)) for name, b in BOARDS.items()}
    assert on == {"icebreaker": 0, "ulx3s-85f": 1, "orangecrab-25f": 1}
    for name, lanes, single_port, _, weight_depth in CASES:
        program = case(name, lanes, single_port, weight_depth=weight_depth).program
        k = sink.acc_stage(program)
        assert k == (1 if program.sink_gap == 1 else 0)
        assert sink.depth(program) == 4 + k
        op = next(o for o in program.ops if o.sink is Sink.DIF)
        assert sink.cycles(op, program, 3) == 3 * (op.f["sink_words"] * program.sink_gap + 1 + k)


@pytest.mark.parametrize("c", CASES, ids=[f"{c[0]}@{c[1]}-{c[3]}" + (f"-tiles{c[4]}" if c[4] else "")
                                         for c in CASES])
def test_sink_with_the_acc_stage_the_other_way_matches_golden(c, monkeypatch):
    on = sink.acc_stage(case(*c[:3], weight_depth=c[4]).program)
    monkeypatch.setattr(sink, "acc_stage", lambda program: 1 - on)
    run_sink(*c)


def test_a_store_is_fused_with_the_dif_reading_it_where_not_compact():
    """Full rate (the ECP5 boards): no op reads a stored current back to fire it; each store with a
    DIF reader is that DIF's op (its layers: the synaptic layer, the add if any, the DIF). Compact
    (the iCEBreaker): a store op, then the DIF op of the stored current."""
    art = case("digits", 8).artifact
    full, compact = compile_program(art, 8), compile_program(art, 8, single_port=("cur", "mem"))
    assert full.store_dif and not compact.store_dif
    fused = {o.name: o.layers for o in full.ops if "sto_base" in o.refs}
    assert fused == {"rpe_quant": ("stages.2", "rpe_quant"),
                     "blocks.0.attn.quant_in": ("rpe", "rpe_add", "blocks.0.attn.quant_in"),
                     "blocks.0.mlp.quant1": ("blocks.0.attn.proj", "blocks.0.attn_add", "blocks.0.mlp.quant1"),
                     "head_quant": ("blocks.0.mlp.fc2", "blocks.0.mlp_add", "head_quant")}
    assert not any(o.src is Src.CUR or o.sink is Sink.STORE for o in full.ops)
    assert [o.name for o in compact.ops if o.src is Src.CUR] == list(fused)
    assert len([o for o in compact.ops if o.sink is Sink.STORE]) == 4
    assert len(full.ops) == len(compact.ops) - 4
    assert not any(f.get("store") for f in (compact.fields(o).get("sink_fields", {}) for o in compact.ops))
