"""cocotb bench of :class:`csdformer.hw.dif.DIF` (launcher: tests/test_hw_dif_cocotb.py).

Data: ``currents`` int64 ``(windows, T, N)``; ``expected`` = ``golden.dif`` per window, uint8
``(windows, T, N)``. Meta: ``lanes``, ``in_width``, ``model_cycles`` (for all windows),
``phase2_items``, ``idle``, ``stall``. Body: :func:`csdformer.sim.benchlib.stream.check_phases`.
"""

import cocotb
import numpy as np

from csdformer.sim.benchlib import pack_lanes, unpack_lanes
from csdformer.sim.benchlib.stream import bench_data, check_phases, start, strip_padding


@cocotb.test()
async def dif(dut):
    data, meta = bench_data()
    cur, expected = data["currents"], data["expected"]
    W, T, N = cur.shape
    P = meta["lanes"]
    G = -(-N // P)
    pad = np.zeros((W, T, G * P), dtype=np.int64)
    pad[..., :N] = cur
    groups = pad.reshape(W, T, G, P)

    def inputs(n):
        return {"i_stream": [pack_lanes(row, meta["in_width"]) for row in groups[:n].reshape(-1, P)]}

    def decode(beats, n):
        bits = np.array([unpack_lanes(w, 1, P) for w in beats], dtype=np.uint8)
        return strip_padding(bits.reshape(n, T, G * P), N)

    await start(dut)
    await check_phases(dut, inputs=inputs, output="o_stream", beats_out=lambda n: n * T * G, decode=decode,
                       expected=expected, model_cycles=meta["model_cycles"], idle=meta["idle"],
                       stall=meta["stall"], phase2_items=meta["phase2_items"])
