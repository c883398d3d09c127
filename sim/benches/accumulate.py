"""cocotb bench of :class:`csdformer.hw.accumulate.SpikeAccumulator` (launcher:
tests/test_hw_accumulate_cocotb.py), and the frame-stream bench it shares with
``sim/benches/encode_conv.py`` and ``sim/benches/tdec_matmul.py``.

:func:`frames_bench` is unit-agnostic: the launcher turns stimuli into payload words with the
unit's own layout helpers and the golden op's result into expected output beats; the bench only
streams and compares.

Data (``bench_data``): for each input stream ``s`` in ``meta["inputs"]`` and phase ``p`` in 0, 1:
``{s}_{p}`` int64 payload words; ``expected_{p}`` int64 ``(beats, lanes)``.
Meta: ``inputs``, ``lanes``, ``width``, ``signed``, ``model_cycles`` (phase 0), ``idle``, ``stall``.
Phase 0 streams with no idle/backpressure and measures cycles; phase 1 streams the rest of the
frames with seeded random idle cycles and stalls. Every output value of both phases is compared.
"""

import cocotb
import numpy as np

from csdformer.sim.benchlib import unpack_lanes
from csdformer.sim.benchlib.stream import bench_data, finish, start, transfer


async def frames_bench(dut) -> None:
    """Stream both phases, compare every lane of every output beat, check phase-0 cycles."""
    data, meta = bench_data()
    P, wd, signed = meta["lanes"], meta["width"], bool(meta["signed"])
    await start(dut)
    mismatches = compared = 0
    measured = None
    for phase, (idle, stall) in enumerate([(0.0, 0.0), (meta["idle"], meta["stall"])]):
        want = data[f"expected_{phase}"].reshape(-1, P)
        if not len(want):
            continue
        ins = {s: [int(w) for w in data[f"{s}_{phase}"]] for s in meta["inputs"]}
        beats, cyc = await transfer(dut, ins, "o_stream", len(want), idle=idle, stall=stall, seed=phase)
        if phase == 0:
            measured = cyc
        compared += want.size
        if len(beats) != len(want):
            mismatches += want.size
            continue
        got = np.array([unpack_lanes(w, wd, P, signed=signed) for w in beats])
        mismatches += int(np.count_nonzero(got != want))
    finish(mismatches=mismatches, compared=compared, measured_cycles=measured, model_cycles=meta["model_cycles"])


@cocotb.test()
async def accumulate(dut):
    await frames_bench(dut)
