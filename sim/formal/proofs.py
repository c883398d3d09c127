"""The unit proofs by name: harness, BMC depth, and the verdict each must give.

Each proof runs on the shipped digits artifact's program (its widths and bounds); each has a
variant with one accumulator (ACC) or membrane (MEM) bit removed, which must FAIL: the proof can
tell a unit that wraps from one that does not.

========================  ==========================================================  =========
name                      what                                                        depth
========================  ==========================================================  =========
``accumulate``            LaneAccumulate, 2 lanes, ACC of 4 words: every write equal   14 cycles
                          to ``old + addend`` (exact), any events, all modes
``sink``                  SinkArray, 1 lane, 1 word: every MEM and spike write equal   16 cycles
                          to the DIF step (exact), any step ``t0``, 2 steps from it
========================  ==========================================================  =========
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ... import artifact as A
from ...hw.program import compile_program
from .accumulate import AccumulateHarness
from .runner import Proof, Result, run
from .sink import SinkHarness, depth_for

__all__ = ["Case", "CASES", "program", "build", "run_case"]

ARTIFACT = "digits"
# ACC: its 4 words written (4 cycles), then events entering at 4..8, written at 9..13: the
# forwarding one, two stages ahead, the read port's transparency three ahead and the RAM beyond.
ACC_WORDS, ACC_DEPTH, ACC_LANES = 4, 14, 2
SINK_WORDS, SINK_STEPS, SINK_LANES = 1, 2, 1


@dataclass(frozen=True)
class Case:
    name: str
    unit: str  # accumulate or sink
    narrow: bool  # one ACC / MEM bit removed
    expect: str  # PASS or FAIL


CASES = [Case("accumulate", "accumulate", False, "PASS"), Case("accumulate-narrow", "accumulate", True, "FAIL"),
         Case("sink", "sink", False, "PASS"), Case("sink-narrow", "sink", True, "FAIL")]


@functools.lru_cache(maxsize=None)
def program(lanes: int):
    """The shipped artifact's program at ``lanes`` lanes."""
    return compile_program(A.load(A.resolve_artifact(ARTIFACT)), lanes)


def build(case: Case) -> Proof:
    if case.unit == "accumulate":
        p = program(ACC_LANES)
        top = AccumulateHarness(p, depth=ACC_WORDS, acc_width=p.widths["acc"] - 1 if case.narrow else None)
        return Proof(case.name.replace("-", "_"), top, ACC_DEPTH)
    p = program(SINK_LANES)
    top = SinkHarness(p, words=SINK_WORDS, mem_width=p.widths["mem"] - 1 if case.narrow else None)
    return Proof(case.name.replace("-", "_"), top, depth_for(p, SINK_WORDS, SINK_STEPS))


def run_case(case: Case, workdir=None, *, timeout: float = 600) -> Result:
    return run(build(case), workdir, timeout=timeout)
