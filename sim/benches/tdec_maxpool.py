"""cocotb bench of :class:`csdformer.hw.tdec_maxpool.TDECMaxPool` (launcher: tests/test_hw_tdec_maxpool_cocotb.py).

Data: ``spikes`` uint8 ``(windows, T, C, H, W)``; ``expected`` = ``golden.tdec_maxpool`` per
window, ``(windows, T, C, H', W')``. Meta: ``lanes``, ``out_hw`` ``[H', W']``, ``model_cycles``,
``phase2_items``, ``idle``, ``stall``. Body: :func:`csdformer.sim.benchlib.stream.check_phases`.
"""

import cocotb
import numpy as np

from csdformer.sim.benchlib import pack_lanes, unpack_lanes
from csdformer.sim.benchlib.stream import bench_data, check_phases, start, strip_padding


@cocotb.test()
async def tdec_maxpool(dut):
    data, meta = bench_data()
    spikes, expected = data["spikes"], data["expected"]
    Wn, T, C, H, W = spikes.shape
    P = meta["lanes"]
    Ho, Wo = meta["out_hw"]
    G = -(-C // P)
    pad = np.zeros((Wn, T, G * P, H, W), dtype=np.uint8)
    pad[:, :, :C] = spikes
    beats = pad.reshape(Wn, T, G, P, H, W).transpose(0, 1, 4, 5, 2, 3).reshape(Wn, -1, P)

    def inputs(n):
        return {"i_stream": [pack_lanes(b, 1) for b in beats[:n].reshape(-1, P)]}

    def decode(words, n):
        bits = np.array([unpack_lanes(w, 1, P) for w in words], dtype=np.uint8)
        return strip_padding(bits.reshape(n, T, Ho, Wo, G * P), C).transpose(0, 1, 4, 2, 3)

    await start(dut)
    await check_phases(dut, inputs=inputs, output="o_stream", beats_out=lambda n: n * T * Ho * Wo * G,
                       decode=decode, expected=expected, model_cycles=meta["model_cycles"], idle=meta["idle"],
                       stall=meta["stall"], phase2_items=meta["phase2_items"])
