"""The sequencer (hw/sequencer.py) against its golden slice, the program schedule: driven with
stub phase units that answer ``done`` after a known number of cycles, it must start the phases in
the program's order (the bias pass before a scatter op's frames; per step the scatter then the
sink, or the sink, max-pool or transposer alone; the logits after the head's steps), each with
its op group and the step's frame (``phase_rig.frame``), write the image's pixels to IMG, and take
``n_pixels + Σ sequencer.cycles + the stubs' cycles`` to the last logit. A stub loader fills the
two op slots as the model loader does (a record into a slot the sequencer frees, ``LOAD_DELAY``
cycles later), so the op words come through the staging RAM and every op whose record is late
waits for it. A flipped bit of one pixel write must fail."""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw import sequencer
from csdformer.hw.flash_image import op_bytes
from csdformer.hw.phase import PhaseControl
from csdformer.hw.program import SCATTER_SRC, Sink, Src
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, case, compare, frame

LOAD_DELAY = 300  # cycles from a slot's release to its next record being in (stub loader)
STUB = {"bias": 3, "cumulate": 7, "scatter": 4, "sink": 2, "maxpool": 5, "transpose": 6, "logits": 3}  # cycles a start


def schedule(program, delay):
    """The program schedule: ``(phase, op, step)`` in the order the phases must start: the bias
    pass before a scatter op's frames; per step the cumulative counts (TDEC's ``b``; a compact
    max-pool's input, ``Program.pool_counts``) before the scatter or max-pool, the scatter before
    the sink, or the sink, the max-pool or the transposer alone; the logits after the head's steps. An op whose sink lags
    (:func:`sequencer.lags`) starts the sink of step ``t − 1`` with step ``t``'s first phase (listed
    after it: phases that start in one cycle are ordered as :data:`RANK` says), the sink of the
    step before alone in a fire-only step, and its last sink after its last step. With a tail
    (:func:`sequencer.tails`) the op's first fire-only pass is its last start, and the others
    (``tail``: ``(phase, op, step)`` in their order) run beside the next op."""
    out, tail = [], []
    for op in program.ops:
        lag = sequencer.lags(op, program)
        out += [("bias", op, 1)] if op.src in SCATTER_SRC else []
        n = sequencer.steps(op, program, delay)
        for t in range(1, n + 1):
            counted = op.src is Src.TDEC or (op.src is Src.MAXPOOL and not program.pool_counts)
            cum = [("cumulate", op, t)] if counted else []
            if (op.src in (Src.SYN, Src.TDEC) and t <= program.T) or (op.src is Src.IMG and t == 1):
                if lag:
                    before = [("sink", op, t - 1)] if t > 1 else []
                    out += (cum + before + [("scatter", op, t)]) if cum else ([("scatter", op, t)] + before)
                else:
                    out += cum + [("scatter", op, t)] + ([("sink", op, t)] if op.sink in (Sink.DIF, Sink.STORE) else [])
            elif op.src in (Src.MAXPOOL, Src.TRANSPOSE):
                out += cum + [(op.src.name.lower(), op, t)]
            elif op.sink is not Sink.LOGITS:
                out.append(("sink", op, t - 1 if lag else t))
        if sequencer.tails(op, program, delay):
            out.append(("sink", op, program.T + 1))
            tail += [("sink", op, t) for t in range(program.T + 2, program.T + delay + 1)]
        else:
            out += [("sink", op, n)] if lag else []
        out += [("logits", op, None)] if op.sink is Sink.LOGITS else []
    return out, tail


RANK = ("bias", "cumulate", "scatter", "maxpool", "transpose", "sink", "logits")  # one cycle's starts, in order


def run_sequencer(name, lanes, single_port, delay, flip=None, load_delay=LOAD_DELAY, stub=None):
    STUB = dict(globals()["STUB"], **(stub or {}))  # noqa: N806 (the stubs' cycles, as the module's)
    c = case(name, lanes, single_port)
    program = c.program
    seq = sequencer.Sequencer(program)
    rig = PhaseRig(program, seq, flip=flip)
    starts, result = [], {}

    want, want_tail = schedule(program, delay)
    every = want + want_tail

    def stub(phase):
        port = getattr(seq, phase)
        sampled = [port.start, seq.tail, port.frame] + ([port.op] if "op" in port.signature.members else [])

        async def run(ctx):
            for _ in range(sum(w[0] == phase for w in every)):
                start, in_tail, fr, *op = await ctx.tick().sample(*sampled).until(port.start | rig.timeout(20_000))
                if not start:
                    return
                starts.append((ctx.get(rig.clock), RANK.index(phase), phase, in_tail, fr, op[0] if op else None))
                await ctx.tick().repeat(STUB[phase] - 1) if STUB[phase] > 1 else None
                ctx.set(port.done, 1)
                if phase == "logits":
                    ctx.set(port.last, 1)
                await ctx.tick()
                ctx.set(port.done, 0)
                if phase == "logits":
                    ctx.set(port.last, 0)
        return run

    ob = op_bytes(program)

    async def loader(ctx):
        """The model loader's protocol: records 0 and 1 in at once; then record j starts loading
        when the one before it is in and slot j mod 2 is free (a ``free`` pulse cleared its
        flag), and is in ``load_delay`` cycles later."""
        def put(j):
            word = program.encode(program.ops[j]).to_bytes(ob, "little")
            rig.load(ctx, "op", (j % 2) * ob, list(word))

        put(0)
        put(1)
        full, j, done_at, now = 0b11, 2, None, 0
        ctx.set(seq.full, full)
        while j < len(program.ops) and now < 20_000:
            *_, free = await ctx.tick().sample(seq.free)
            now += 1
            full &= ~free
            if done_at is not None and now >= done_at:
                put(j)
                full |= 1 << (j % 2)
                j, done_at = j + 1, None
            if done_at is None and j < len(program.ops) and not full >> (j % 2) & 1:
                done_at = now + load_delay
            ctx.set(seq.full, full)

    async def bench(ctx):
        pixels = c.image.transpose(1, 2, 0).reshape(-1).tolist()  # (y, x, c) order
        ctx.set(seq.delay, delay)
        ctx.set(seq.image.valid, 1)
        for px in pixels:
            ctx.set(seq.image.payload, px)
            await ctx.tick().until(seq.image.ready)
        ctx.set(seq.image.valid, 0)
        await ctx.tick().until(~seq.busy | rig.timeout(20_000))
        result.update(cycles=ctx.get(seq.cycles), img=rig.dump(ctx, "img", 0, len(pixels)), pixels=pixels)

    phases = [n for n, m in seq.signature.members.items() if m.is_signature and isinstance(m.signature, PhaseControl)]
    assert sorted(phases) == sorted(STUB)
    rig.run(bench, loader, *[stub(p) for p in phases])
    compare(f"{name}@{lanes} IMG (pixel)", np.array(result["img"]), np.array(result["pixels"]))
    starts = [s[2:] for s in sorted(starts, key=lambda s: s[:2])]
    in_tail = [s[0] == "sink" and s[1] for s in starts]  # the tail's later passes, beside the next op
    tail_starts = [(s[0], s[2], s[3]) for s, t in zip(starts, in_tail) if t]
    starts = [(s[0], s[2], s[3]) for s, t in zip(starts, in_tail) if not t]
    for kind, got_starts, wanted in (("start", starts, want), ("tail start", tail_starts, want_tail)):
        got = [s[0] for s in got_starts]
        i = next((i for i, (g, w) in enumerate(zip(got + [None] * len(wanted), wanted)) if g != w[0]), None)
        assert i is None and len(got) == len(wanted), (
            f"{kind} {i}: {got[i] if i < len(got) else 'none'} instead of {wanted[i][0]} of {wanted[i][1].name}, "
            f"step {wanted[i][2]}" if i is not None else f"{kind}s: {len(got)} instead of {len(wanted)}")
    for i, ((phase, op, t), (_, fr, opv)) in enumerate(zip(want + want_tail, starts + tail_starts)):
        where = f"start {i}: {phase} of {op.name}, step {t}"
        if opv is not None:
            assert opv.as_bits() == rig.op_const(op, getattr(seq, phase)).as_bits(), f"{where}: op fields"
        if phase not in ("bias", "logits"):  # the bias pass starts before the frame is set up
            got_fr, want_fr = {k: getattr(fr, k) for k, _ in fr.shape()}, frame(program, op, t, delay)
            if i >= len(want):  # a tail's frame: the fields a fire-only pass uses
                got_fr, want_fr = ({k: d[k] for k in ("first", "integrate", "fire", "out")} for d in (got_fr, want_fr))
            assert got_fr == want_fr, f"{where}: frame"
    # A lagging sink runs beside steps 2..T's front phases: those steps cost the longer of the two.
    front = {Src.SYN: STUB["scatter"], Src.TDEC: STUB["cumulate"] + STUB["scatter"]}
    handed = [("sink", op, program.T + 1) for op in program.ops if sequencer.tails(op, program, delay)]
    costs = [sequencer.cycles(op, program, delay) + sum(STUB[w[0]] for w in want if w[1] is op and w not in handed)
             - ((program.T - 1) * min(front[op.src], STUB["sink"]) if sequencer.lags(op, program) else 0)
             for op in program.ops]
    # The tail's passes, the one handed over included, run after their op's end; a tail holds the
    # next op's FRAME (but step 1 of a scatter of spikes) until its last pass is done.
    fronts = [3 + sequencer.fetch_cycles(program) + (STUB["bias"] if op.src in SCATTER_SRC else 0)
              + (2 + front[op.src] if op.src in sequencer.TAIL_FREE else 0) for op in program.ops]
    tails = [sequencer.tail_cycles(op, program, delay, STUB["sink"]) for op in program.ops]
    waits, held = _waits(costs, fronts, tails, load_delay)
    if load_delay == LOAD_DELAY:
        assert waits > 0, "no op waited for its record: the stub loader does not exercise OP_START"
    else:  # records in quickly: the tails outlast the next op's front
        assert held > 0, "no FRAME was held by a tail"
    if program.sink_tail and delay:
        assert want_tail, "no tail"
    assert result["cycles"] == program.n_pixels + sum(costs) + waits + held


def _waits(costs, fronts, tails, load_delay):
    """(cycles the ops wait for their records with the stub loader, cycles their FRAME is held by
    the tail of the op before): record j starts when record j − 1 is in and op j − 2 has ended
    (its flag is clear the cycle after), and its flag is up ``load_delay`` cycles later; an op's held
    FRAME, ``fronts[k]`` cycles after its record is in, waits until ``tails[k − 1]`` cycles after
    op k − 1's end."""
    start, ends, waits, held, loader, tail_open = 0, [], 0, 0, 0, None
    for k, cost in enumerate(costs):
        ready = 0
        if k >= 2:
            ready = loader = max(loader, ends[k - 2] + 1) + load_delay
        wait = max(0, ready - start)
        hold = max(0, tail_open - (start + wait + fronts[k])) if tail_open is not None else 0
        waits += wait
        held += hold
        ends.append(start + wait + cost + hold - 1)
        tail_open = ends[k] + tails[k] if tails[k] else None
        start = ends[k] + 1
    return waits, held


CASES = [("digits", 8, (), 3), ("digits", 8, (), 0), ("digits", 1, ("cur", "mem"), 3), ("fashion_mnist", 16, (), 3)]


@pytest.mark.parametrize("case_", CASES, ids=["digits@8-D3", "digits@8-D0", "digits@1-single-port", "fashion_mnist@16"])
def test_sequencer_runs_the_program_schedule(case_):
    run_sequencer(*case_)


def test_sequencer_holds_the_next_op_while_a_tail_runs():
    """Records in two cycles after a slot frees and sink passes of 40 cycles: a tail (three fire-only
    passes) outlasts the next op's record copy, bias pass and first step, so that op's FRAME
    waits for it (and the count must still be exact)."""
    run_sequencer("digits", 8, (), 3, load_delay=2, stub={"sink": 40})


def test_sequencer_corrupted_rtl_fails():
    with pytest.raises(AssertionError, match=r"digits@8 IMG \(pixel\): 1 of 64 differ; first at \(5,\)"):
        run_sequencer(*CASES[0], flip=Flip("img", n=5, bit=0))
