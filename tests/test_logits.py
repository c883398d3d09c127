"""The logits unit (hw/logits.py) against its golden slice, ``golden.logits`` (the head's current
summed over the frames, which ACC holds after the head's steps) and ``golden.argmax`` (the lowest
index wins ties), on the product's memories (sim/benchlib/phase_rig.py): every logit beat and the
prediction bit-exact, cycles to the last logit equal to ``logits.cycles``, the prediction the
cycle after the next; a flipped bit of one
ACC read must fail."""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw import logits
from csdformer.hw.program import Tensor
from csdformer.sim import golden
from csdformer.sim.benchlib.phase_rig import Flip, PhaseRig, case, compare

CASES = [("digits", 8, None), ("digits", 1, None), ("fashion_mnist", 16, None),
         ("digits", 8, (3, 7))]  # the last: classes 3 and 7 tie for the maximum


def run_logits(name, lanes, tie, flip=None):
    c = case(name, lanes)
    program, nc = c.program, c.program.num_classes
    want = golden.logits(c.frames["head"])
    if tie is not None:
        want = want.copy()
        want[list(tie)] = want.max() + 1
    acc_t = Tensor("head", "acc", 1, nc, program.lanes, (nc,))
    unit = logits.Logits(program)
    rig = PhaseRig(program, unit, flip=flip)
    beats, preds, last, measured = [], [], [], []

    async def consumer(ctx):
        ctx.set(unit.logits.ready, 1)
        ctx.set(unit.prediction.ready, 1)
        sampled = (unit.logits.valid, unit.logits.payload, unit.prediction.valid, unit.prediction.payload,
                   unit.ctl.last, rig.clock)
        while not preds and ctx.get(rig.clock) < 1000:
            _, _, lv, lp, pv, pp, is_last, clock = await ctx.tick().sample(*sampled)
            beats.extend([lp] if lv else [])
            preds.extend([pp] if pv else [])
            last.extend([clock] if is_last else [])

    async def bench(ctx):
        rig.load_tensor(ctx, "acc", 0, acc_t, want[None])
        measured.append(await rig.start(ctx))
        measured.append(ctx.get(rig.clock))

    rig.run(bench, consumer)
    compare(f"{name}@{lanes} logits", np.array(beats), want, acc_t)
    compare(f"{name}@{lanes} prediction", np.array(preds), np.array([golden.argmax(want)]))
    n, end = measured  # the phase's cycles; the clock after its done and one more
    first = end - 1 - n  # the clock in the unit's first cycle
    # The prediction (and done) two cycles after the last logit: the last candidate is compared first.
    assert len(last) == 1 and last[0] - first + 1 == logits.cycles(program) and n == logits.cycles(program) + 2


@pytest.mark.parametrize("case_", CASES, ids=["digits@8", "digits@1", "fashion_mnist@16", "tie"])
def test_logits_match_golden(case_):
    run_logits(*case_)


def test_logits_corrupted_rtl_fails():
    with pytest.raises(AssertionError, match=r"digits@8 logits: 1 of 10 differ; first at \(8,\) \(word 1 of the frame"):
        run_logits("digits", 8, None, flip=Flip("acc", n=1, bit=2))
