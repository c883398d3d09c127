"""cocotb bench of :class:`csdformer.hw.encode_conv.EncodeConv` (launcher:
tests/test_hw_encode_conv_cocotb.py). The shared frame-stream bench: see
:func:`csdformer.sim.benches.accumulate.frames_bench` for data and meta.
"""

import cocotb

from csdformer.sim.benches.accumulate import frames_bench


@cocotb.test()
async def encode_conv(dut):
    await frames_bench(dut)
