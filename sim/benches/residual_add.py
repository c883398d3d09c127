"""cocotb bench of :class:`csdformer.hw.residual_add.ResidualAdd` (launcher: tests/test_hw_residual_add_cocotb.py).

Data: ``a``, ``b`` int64 ``(frames, N)``; ``expected`` = golden ``a + b``. Meta: ``lanes``,
``a_width``, ``b_width``, ``width``, ``model_cycles``, ``phase2_items``, ``idle``, ``stall``.
Each frame is ``ceil(N / lanes)`` beats (last one zero-padded). Body:
:func:`csdformer.sim.benchlib.stream.check_phases`.
"""

import cocotb
import numpy as np

from csdformer.sim.benchlib import pack_lanes, unpack_lanes
from csdformer.sim.benchlib.stream import bench_data, check_phases, start, strip_padding


@cocotb.test()
async def residual_add(dut):
    data, meta = bench_data()
    a, b, expected = data["a"], data["b"], data["expected"]
    F, N = a.shape
    P = meta["lanes"]
    G = -(-N // P)

    def beats(x, width):
        pad = np.zeros((F, G * P), dtype=np.int64)
        pad[:, :N] = x
        return pad.reshape(F, G, P), width

    (ga, wa), (gb, wb) = beats(a, meta["a_width"]), beats(b, meta["b_width"])

    def inputs(n):
        return {"a_stream": [pack_lanes(r, wa) for r in ga[:n].reshape(-1, P)],
                "b_stream": [pack_lanes(r, wb) for r in gb[:n].reshape(-1, P)]}

    def decode(words, n):
        vals = np.array([unpack_lanes(w, meta["width"], P, signed=True) for w in words])
        return strip_padding(vals.reshape(n, G * P), N)

    await start(dut)
    await check_phases(dut, inputs=inputs, output="o_stream", beats_out=lambda n: n * G, decode=decode,
                       expected=expected, model_cycles=meta["model_cycles"], idle=meta["idle"],
                       stall=meta["stall"], phase2_items=meta["phase2_items"])
